// The watch page: the player (player.js), the chat (chat.js), past broadcasts and uploaded
// videos. Configuration comes from data- attributes on <main id="watch">; the CSP allows no
// inline script.
(function () {
  "use strict";

  const root = document.getElementById("watch");
  const slug = root.dataset.channel;
  const player = window.Onair.player(root);
  window.Onair.chat(root, { live: player.setLive, viewers: player.setViewers });

  // ---------------------------------------------------------------- past broadcasts

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds || 0));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + rest : m + ":" + rest;
  }

  // Only same-origin paths or http(s) URLs become links: never javascript: or data:.
  function safeUrl(raw) {
    if (typeof raw !== "string" || !raw) return null;
    try {
      const url = new URL(raw, location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (_err) {
      return null;
    }
  }

  const HIDDEN_STATES = ["recording", "failed", "deleted"];

  function link(text, href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function showRecordings(recordings) {
    if (!Array.isArray(recordings) || recordings.length === 0) return;
    const items = [];
    recordings.forEach(function (rec) {
      // The session being recorded now is the live stream; a failed one has nothing to play.
      if (!rec || typeof rec !== "object" || HIDDEN_STATES.indexOf(rec.state) >= 0) return;
      const li = document.createElement("li");
      const when = document.createElement("time");
      const started = new Date(rec.started_at);
      if (!isNaN(started)) {
        when.dateTime = started.toISOString();
        when.textContent = started.toLocaleString();
      }
      const hlsUrl = safeUrl(rec.hls_url);
      const mp4Url = safeUrl(rec.mp4_url);
      const meta = document.createElement("span");
      meta.className = "past-meta";
      meta.textContent = duration(rec.duration_s) + (hlsUrl || mp4Url ? "" : " · processing");
      li.append(when, " ", meta);
      if (hlsUrl && typeof rec.id === "string") {
        // its own page, where the chat of the broadcast replays beside it
        const play = link(
          "Play",
          "/watch/" + encodeURIComponent(slug) + "/recordings/" + encodeURIComponent(rec.id),
        );
        play.setAttribute("aria-label", "Play the broadcast of " + when.textContent);
        li.append(" ", play);
      }
      if (mp4Url) {
        const download = link("Download", mp4Url);
        download.setAttribute("download", "");
        li.append(" ", download);
      }
      items.push(li);
    });
    if (!items.length) return;
    document.getElementById("past-list").replaceChildren.apply(document.getElementById("past-list"), items);
    document.getElementById("past").hidden = false;
  }

  // Until the recordings endpoint exists it answers 404: then the section stays hidden.
  fetch("/api/channels/" + encodeURIComponent(slug) + "/recordings", { credentials: "same-origin" })
    .then(function (response) {
      return response.ok ? response.json() : null;
    })
    .then(showRecordings)
    .catch(function () {});

  // ---------------------------------------------------------------- uploaded videos

  const VIDEO_POLL_MS = 5000; // while a video transcodes, its progress is fetched this often
  let videoTimer = null;

  function showVideos(videos) {
    if (videoTimer !== null) {
      clearTimeout(videoTimer);
      videoTimer = null;
    }
    if (!Array.isArray(videos)) return;
    const items = [];
    let working = false;
    videos.forEach(function (v) {
      if (!v || typeof v !== "object" || v.state === "failed" || v.state === "deleted") return;
      const li = document.createElement("li");
      const title = document.createElement("span");
      title.className = "video-title";
      title.textContent = typeof v.title === "string" ? v.title : "Video";
      const meta = document.createElement("span");
      meta.className = "past-meta";
      const hlsUrl = safeUrl(v.hls_url);
      if (v.state === "ready" && hlsUrl) {
        meta.textContent = duration(v.duration_s);
        li.append(title, " ", meta, " ");
        const play = document.createElement("button");
        play.type = "button";
        play.className = "link-button";
        play.textContent = "Play";
        play.setAttribute("aria-label", "Play " + title.textContent);
        play.addEventListener("click", function () {
          player.play(hlsUrl, safeUrl(v.poster_url));
        });
        li.append(play);
      } else {
        working = true;
        const pct = Math.round(Math.max(0, Math.min(1, Number(v.progress) || 0)) * 100);
        meta.textContent = v.state === "queued" ? "waiting to be processed" : "processing " + pct + " %";
        const bar = document.createElement("progress");
        bar.max = 100;
        bar.value = pct;
        bar.setAttribute("aria-label", "Processing " + title.textContent);
        li.append(title, " ", meta, " ", bar);
      }
      items.push(li);
    });
    const section = document.getElementById("videos");
    const list = document.getElementById("videos-list");
    list.replaceChildren.apply(list, items);
    section.hidden = items.length === 0;
    if (working) videoTimer = setTimeout(loadVideos, VIDEO_POLL_MS);
  }

  function loadVideos() {
    fetch("/api/channels/" + encodeURIComponent(slug) + "/videos", { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(showVideos)
      .catch(function () {});
  }

  loadVideos();


  // ---------------------------------------------------------------- embed snippet

  const embedCode = document.getElementById("embed-code");
  const copied = document.getElementById("embed-copied");
  embedCode.value = window.Onair.embedCode(slug, document.querySelector(".title").textContent);
  document.getElementById("embed-copy").addEventListener("click", function () {
    embedCode.select();
    const done = function () {
      copied.textContent = "Copied.";
    };
    // The clipboard API needs HTTPS; over plain HTTP the selected text is copied the old way.
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(embedCode.value).then(done, function () {
        copied.textContent = "Select the text and copy it.";
      });
    } else if (document.execCommand("copy")) {
      done();
    } else {
      copied.textContent = "Select the text and copy it.";
    }
  });
})();
