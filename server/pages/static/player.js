// The live player: hls.js with a quality menu, the live/offline badge and the viewer count,
// shared by the watch page, the embeds and a past broadcast's page. Onair.player(root) finds
// its elements by id (the viewer count and "Back to live" are optional) and returns what a
// page drives it with.
(function () {
  "use strict";

  window.Onair = window.Onair || {};

  window.Onair.player = function (root) {
    const liveSrc = root.dataset.src;
    const video = document.getElementById("player");
    const playerBox = document.getElementById("player-box");
    const offlineCard = document.getElementById("offline-card");
    const stateBadge = document.getElementById("state");
    const viewersText = document.getElementById("viewers");
    const quality = document.getElementById("quality");
    const backToLive = document.getElementById("back-to-live");

    let live = root.dataset.live === "true";
    let replaying = false; // a past broadcast is in the player instead of the live stream
    let hls = null;
    let retryTimer = null;
    let retryDelay = 1000;
    let mediaErrors = 0;
    let videoPreference = null; // {videoCodec: "av01" | "avc1"} for hls.js, or null: its own pick

    // The most efficient codec this browser decodes well: AV1 where it decodes smoothly and no
    // worse on power than H.264 does (phones decode H.264 and HEVC in hardware, AV1 often in
    // software: it would drain the battery), else HEVC (hls.js prefers it to AV1 by itself),
    // else H.264. Safari plays natively and picks for itself.
    function chooseVideoCodec() {
      const caps = navigator.mediaCapabilities;
      if (!caps || !caps.decodingInfo || !window.MediaSource) return Promise.resolve(null);
      function info(codecs) {
        return caps
          .decodingInfo({
            type: "media-source",
            video: {
              contentType: 'video/mp4; codecs="' + codecs + '"',
              width: 1280, height: 720, bitrate: 2500000, framerate: 30,
            },
          })
          .catch(function () {
            return { supported: false, smooth: false, powerEfficient: false };
          });
      }
      return Promise.all([info("av01.0.05M.08"), info("hvc1.1.6.L93.B0"), info("avc1.4D401F")]).then(
        function (found) {
          const av1 = found[0], hevc = found[1], avc = found[2];
          if (av1.supported && av1.smooth && (av1.powerEfficient || !avc.powerEfficient)) {
            return { videoCodec: "av01" };
          }
          return hevc.supported ? null : { videoCodec: "avc1" };
        },
      );
    }

    function clearRetry() {
      if (retryTimer !== null) {
        clearTimeout(retryTimer);
        retryTimer = null;
      }
    }

    function stopPlayer() {
      clearRetry();
      if (hls) {
        hls.destroy();
        hls = null;
      }
      video.removeAttribute("src");
      video.load();
      video.removeAttribute("data-codec");
      resetQuality();
    }

    // A fatal error while live usually means the transcoder is (re)starting: try again, backing off.
    function scheduleRetry(src) {
      clearRetry();
      retryTimer = setTimeout(function () {
        retryTimer = null;
        if (live || replaying) startPlayer(src);
      }, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 8000);
    }

    function startPlayer(src) {
      stopPlayer();
      mediaErrors = 0;
      if (!replaying) video.poster = root.dataset.poster + "?t=" + Date.now();
      if (window.Hls && window.Hls.isSupported()) {
        const Hls = window.Hls;
        hls = new Hls({
          // Latency-friendly live settings: stay two 2 s segments behind the live edge, speed up
          // a little to catch up after a stall, and keep little back buffer on phones.
          liveSyncDurationCount: 2,
          liveMaxLatencyDurationCount: 6,
          maxLiveSyncPlaybackRate: 1.2,
          backBufferLength: 30,
          maxBufferLength: 20,
          enableWorker: true,
          startLevel: -1,
          capLevelToPlayerSize: true,
          videoPreference: videoPreference || undefined,
        });
        hls.on(Hls.Events.MANIFEST_PARSED, function () {
          retryDelay = 1000;
          fillQuality();
          const played = video.play();
          if (played) played.catch(function () {});
        });
        hls.on(Hls.Events.LEVEL_SWITCHED, function (_event, data) {
          const level = hls && hls.levels[data.level];
          if (!level) return;
          video.dataset.codec = level.videoCodec || "";
          video.dataset.height = String(level.height || "");
          const auto = quality.querySelector('option[value="-1"]');
          if (auto) auto.textContent = hls.autoLevelEnabled ? "Auto (" + levelName(level) + ")" : "Auto";
        });
        hls.on(Hls.Events.ERROR, function (_event, data) {
          if (!data.fatal) return;
          if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaErrors < 2) {
            mediaErrors += 1;
            hls.recoverMediaError();
            return;
          }
          scheduleRetry(src);
        });
        hls.loadSource(src);
        hls.attachMedia(video);
      } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
        // Safari on iOS: native HLS picks the rendition itself, so the menu stays at Auto.
        video.src = src;
        video.addEventListener("error", function onError() {
          video.removeEventListener("error", onError);
          scheduleRetry(src);
        });
        const played = video.play();
        if (played) played.catch(function () {});
      } else {
        offlineCard.textContent = "This browser cannot play HLS video.";
        playerBox.classList.add("is-offline");
      }
    }

    function levelName(level) {
      if (level.height) return level.height + "p";
      return level.bitrate ? Math.round(level.bitrate / 1000) + " kb/s" : "Source";
    }

    function codecName(level) {
      const codec = (level.videoCodec || "").slice(0, 4);
      if (codec === "avc1" || codec === "avc3") return "H.264";
      if (codec === "hvc1" || codec === "hev1") return "HEVC";
      if (codec === "av01") return "AV1";
      return codec;
    }

    function resetQuality() {
      quality.replaceChildren(new Option("Auto", "-1"));
      quality.disabled = true;
    }

    // hls.levels holds only the variants this browser can decode (hls.js filters them by CODECS).
    function fillQuality() {
      const levels = hls.levels.map(function (level, index) {
        return { level: level, index: index };
      });
      const heights = {};
      levels.forEach(function (entry) {
        heights[entry.level.height] = (heights[entry.level.height] || 0) + 1;
      });
      levels.sort(function (a, b) {
        return b.level.height - a.level.height || b.level.bitrate - a.level.bitrate;
      });
      const options = [new Option("Auto", "-1")];
      levels.forEach(function (entry) {
        let label = levelName(entry.level);
        if (heights[entry.level.height] > 1) label += " " + codecName(entry.level);
        options.push(new Option(label, String(entry.index)));
      });
      quality.replaceChildren.apply(quality, options);
      quality.value = "-1";
      quality.disabled = levels.length < 2;
    }

    quality.addEventListener("change", function () {
      if (!hls) return;
      // currentLevel switches now (flushing the buffer), so a choice shows at once.
      hls.currentLevel = parseInt(quality.value, 10);
      const auto = quality.querySelector('option[value="-1"]');
      if (auto) auto.textContent = "Auto";
    });

    function setLive(next) {
      const changed = next !== live;
      live = next;
      root.dataset.live = String(live);
      stateBadge.textContent = replaying ? "Replay" : live ? "Live" : "Offline";
      stateBadge.className = "badge " + (replaying ? "replay" : live ? "live" : "offline");
      if (backToLive) backToLive.hidden = !(replaying && live);
      if (replaying) return;
      playerBox.classList.toggle("is-offline", !live);
      if (live && (changed || !hls)) {
        retryDelay = 1000;
        startPlayer(liveSrc);
      } else if (!live && changed) {
        stopPlayer();
        video.removeAttribute("poster");
      }
    }

    if (backToLive) {
      backToLive.addEventListener("click", function () {
        replaying = false;
        stopPlayer();
        setLive(live);
        if (live) startPlayer(liveSrc);
      });
    }

    function setViewers(count) {
      if (viewersText) viewersText.textContent = count + " watching";
    }

    // A recording or an uploaded video in the player instead of the live stream.
    function play(src, poster) {
      replaying = true;
      retryDelay = 1000;
      if (poster) video.poster = poster;
      else video.removeAttribute("poster");
      playerBox.classList.remove("is-offline");
      setLive(live);
      startPlayer(src);
      video.focus();
    }

    setViewers(parseInt(root.dataset.viewers, 10) || 0);
    chooseVideoCodec().then(function (preference) {
      videoPreference = preference;
      // the chat socket may have started the player already: start again with the preference
      if (live && !replaying && (!hls || preference)) startPlayer(liveSrc);
    });
    return { video: video, setLive: setLive, setViewers: setViewers, play: play };
  };
})();
