// The watch page: hls.js player with a quality menu, live/offline state, viewer count,
// Socket.IO chat (name, messages as text only, moderation), past broadcasts and uploaded videos.
// Configuration comes from data- attributes on <main id="watch">; the CSP allows no inline script.
(function () {
  "use strict";

  const root = document.getElementById("watch");
  const slug = root.dataset.channel;
  const liveSrc = root.dataset.src;
  const video = document.getElementById("player");
  const playerBox = document.getElementById("player-box");
  const stateBadge = document.getElementById("state");
  const viewersText = document.getElementById("viewers");
  const quality = document.getElementById("quality");
  const backToLive = document.getElementById("back-to-live");
  const list = document.getElementById("messages");
  const status = document.getElementById("chat-status");
  const nameForm = document.getElementById("name-form");
  const nameInput = document.getElementById("name");
  const messageForm = document.getElementById("message-form");
  const messageInput = document.getElementById("message");
  const sendButton = document.getElementById("send");
  const modTools = document.getElementById("mod-tools");
  const slowSelect = document.getElementById("slow");
  const banLength = document.getElementById("ban-length");
  const slowNote = document.getElementById("slow-note");

  const MAX_MESSAGES = 200;
  const ACK_TIMEOUT = 8000;
  const NAME_KEY = "onair.name";
  const TOKEN_KEY = "onair.moderator." + slug;

  // ---------------------------------------------------------------- player

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
      setStatus("This browser cannot play HLS video.");
    }
  }

  function levelName(level) {
    return level.height ? level.height + "p" : Math.round(level.bitrate / 1000) + " kb/s";
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
    backToLive.hidden = !(replaying && live);
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

  backToLive.addEventListener("click", function () {
    replaying = false;
    stopPlayer();
    setLive(live);
    if (live) startPlayer(liveSrc);
  });

  function setViewers(count) {
    viewersText.textContent = count + " watching";
  }

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
      if (hlsUrl) {
        const play = document.createElement("button");
        play.type = "button";
        play.className = "link-button";
        play.textContent = "Play";
        play.setAttribute("aria-label", "Play the broadcast of " + when.textContent);
        play.addEventListener("click", function () {
          replaying = true;
          retryDelay = 1000;
          video.removeAttribute("poster");
          playerBox.classList.remove("is-offline");
          setLive(live);
          startPlayer(hlsUrl);
          video.focus();
        });
        li.append(" ", play);
      }
      if (mp4Url) {
        const link = document.createElement("a");
        link.href = mp4Url;
        link.textContent = "Download";
        link.setAttribute("download", "");
        li.append(" ", link);
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

  function playVod(src, poster) {
    replaying = true;
    retryDelay = 1000;
    if (poster) video.poster = poster;
    else video.removeAttribute("poster");
    playerBox.classList.remove("is-offline");
    setLive(live);
    startPlayer(src);
    video.focus();
  }

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
          playVod(hlsUrl, safeUrl(v.poster_url));
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

  // ---------------------------------------------------------------- chat

  let me = null; // {id, name, role} once joined
  let slowSeconds = 0;
  let cooldownUntil = 0;
  let cooldownTimer = null;
  const rendered = new Map(); // message id -> <li>

  // A moderator opens /watch/<slug>#token=<token>; the token moves to this browser's storage
  // and out of the address bar (a fragment never reaches a server or its logs).
  function readToken() {
    const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (match) {
      try {
        localStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
      } catch (_err) {}
      history.replaceState(null, "", location.pathname + location.search);
    }
    try {
      return localStorage.getItem(TOKEN_KEY);
    } catch (_err) {
      return null;
    }
  }

  function storedName() {
    try {
      return localStorage.getItem(NAME_KEY) || "";
    } catch (_err) {
      return "";
    }
  }

  function storeName(name) {
    try {
      localStorage.setItem(NAME_KEY, name);
    } catch (_err) {}
  }

  function setStatus(text, kind) {
    status.textContent = text || "";
    status.dataset.kind = kind || "";
  }

  const ERRORS = {
    rate_limited: "You are sending messages too fast. Wait a few seconds.",
    too_long: "That message is too long (500 characters at most).",
    empty: "Type a message first.",
    banned: "You are banned from this chat.",
    not_joined: "Not in the chat yet. Joining again…",
    invalid_name: "Names are 1–24 letters, digits, spaces, dots, dashes or underscores.",
    name_taken: "That name is taken here. Pick another.",
    forbidden: "Only moderators can do that.",
    no_channel: "This channel no longer exists.",
    timeout: "No answer from the server. Check your connection.",
    unavailable: "Chat is unavailable for a moment. Retrying…",
  };
  const JOIN_RETRY_MS = 5000; // after an "unavailable" join (the database is down)

  function errorText(error) {
    if (error === "slow_mode") return "Slow mode is on: one message every " + slowSeconds + " s.";
    return ERRORS[error] || "Something went wrong (" + error + ").";
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }

  function timeOf(ts) {
    const date = new Date(ts);
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  // Every piece of a message goes in through textContent: chat text is never parsed as HTML.
  function renderMessage(message) {
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.id = message.id;
    const when = document.createElement("time");
    when.dateTime = message.ts;
    when.textContent = timeOf(message.ts);
    const who = document.createElement("span");
    who.className = "who" + (message.user.role === "moderator" ? " is-mod" : "");
    who.textContent = message.user.name;
    if (message.user.role === "moderator") who.title = "Moderator";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    li.append(when, " ", who, " ", text);
    if (me && me.role === "moderator") li.append(moderatorButtons(message));
    return li;
  }

  function moderatorButtons(message) {
    const box = document.createElement("span");
    box.className = "mod-actions";
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "Delete";
    del.setAttribute("aria-label", "Delete message from " + message.user.name);
    del.addEventListener("click", function () {
      moderate("delete", { channel: slug, id: message.id });
    });
    box.append(del);
    if (message.user.role !== "moderator") {
      const ban = document.createElement("button");
      ban.type = "button";
      ban.textContent = "Ban";
      ban.setAttribute("aria-label", "Ban " + message.user.name);
      ban.addEventListener("click", function () {
        const payload = { channel: slug, user_id: message.user.id };
        if (banLength.value) payload.seconds = parseInt(banLength.value, 10);
        moderate("ban", payload, message.user.name + " is banned.");
      });
      box.append(ban);
    }
    return box;
  }

  function addMessage(message) {
    if (!message || message.channel !== slug || rendered.has(message.id)) return;
    const stick = nearBottom();
    const li = renderMessage(message);
    rendered.set(message.id, li);
    list.append(li);
    while (list.children.length > MAX_MESSAGES) {
      const first = list.firstElementChild;
      rendered.delete(first.dataset.id);
      first.remove();
    }
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function showHistory(history) {
    rendered.clear();
    list.replaceChildren();
    (history || []).forEach(addMessage);
    list.scrollTop = list.scrollHeight;
  }

  function setSlowMode(seconds) {
    slowSeconds = seconds || 0;
    slowNote.hidden = slowSeconds === 0;
    slowNote.textContent = slowSeconds ? "Slow mode: one message every " + slowSeconds + " s." : "";
    if (me && me.role === "moderator") slowSelect.value = String(slowSeconds);
  }

  function setCanSend(can) {
    messageInput.disabled = !can;
    sendButton.disabled = !can || Date.now() < cooldownUntil;
  }

  function cooldown(seconds) {
    cooldownUntil = Date.now() + seconds * 1000;
    clearInterval(cooldownTimer);
    const tick = function () {
      const left = Math.ceil((cooldownUntil - Date.now()) / 1000);
      if (left <= 0) {
        clearInterval(cooldownTimer);
        cooldownTimer = null;
        sendButton.textContent = "Send";
        sendButton.disabled = messageInput.disabled;
        return;
      }
      sendButton.textContent = "Wait " + left + " s";
      sendButton.disabled = true;
    };
    tick();
    cooldownTimer = setInterval(tick, 250);
  }

  function showModerator(on) {
    modTools.hidden = !on;
    root.classList.toggle("is-moderator", on);
  }

  const token = readToken();
  const socket = window.io({ auth: token ? { token: token } : {} });

  function join(name, chosen) {
    const payload = { channel: slug };
    if (name) payload.name = name;
    socket.timeout(ACK_TIMEOUT).emit("join", payload, function (err, ack) {
      if (err) {
        setStatus(errorText("timeout"), "error");
        return;
      }
      if (!ack.ok) {
        if (!chosen && name && (ack.error === "name_taken" || ack.error === "invalid_name")) {
          join("", false); // the remembered name is in use (another tab): be a guest for now
          return;
        }
        setStatus(errorText(ack.error), "error");
        if (ack.error === "banned") setCanSend(false);
        if (ack.error === "unavailable") {
          setTimeout(function () {
            if (socket.connected) join(name, chosen);
          }, JOIN_RETRY_MS);
        }
        if (!me) nameInput.value = name || "";
        return;
      }
      me = ack.user;
      nameInput.value = me.name;
      if (chosen) storeName(me.name);
      showModerator(me.role === "moderator");
      setSlowMode(ack.slow_mode);
      showHistory(ack.history);
      setViewers(ack.viewers);
      setLive(ack.live);
      setCanSend(true);
      setStatus(chosen ? "You are " + me.name + "." : "");
    });
  }

  socket.on("connect", function () {
    join(me ? me.name : storedName(), false);
  });

  socket.on("connect_error", function (err) {
    if (err && err.message === "invalid_token") {
      try {
        localStorage.removeItem(TOKEN_KEY);
      } catch (_err) {}
      socket.auth = {};
      setStatus("The moderator token was not accepted; chatting as a viewer.", "error");
      socket.connect();
      return;
    }
    setCanSend(false);
    setStatus("Cannot reach the chat. Retrying…", "error");
  });

  socket.on("disconnect", function (reason) {
    setCanSend(false);
    setStatus("Connection lost. Reconnecting…", "error");
    // The server closed this connection on purpose: socket.io does not retry that by itself.
    if (reason === "io server disconnect") socket.connect();
  });

  socket.on("message", addMessage);

  socket.on("deleted", function (event) {
    if (!event || event.channel !== slug) return;
    const li = rendered.get(event.id);
    if (li) {
      rendered.delete(event.id);
      li.remove();
    }
  });

  socket.on("viewers", function (event) {
    if (event && event.channel === slug) setViewers(event.count);
  });

  socket.on("stream", function (event) {
    if (event && event.channel === slug) setLive(!!event.live);
  });

  socket.on("slow_mode", function (event) {
    if (!event || event.channel !== slug) return;
    setSlowMode(event.seconds);
    setStatus(event.seconds ? "Slow mode is on." : "Slow mode is off.");
  });

  function moderate(event, payload, done) {
    socket.timeout(ACK_TIMEOUT).emit(event, payload, function (err, ack) {
      if (err) setStatus(errorText("timeout"), "error");
      else if (!ack.ok) setStatus(errorText(ack.error), "error");
      else if (done) setStatus(done);
    });
  }

  messageForm.addEventListener("submit", function (event) {
    event.preventDefault();
    const text = messageInput.value;
    if (!text.trim() || sendButton.disabled) return;
    socket.timeout(ACK_TIMEOUT).emit("message", { channel: slug, text: text }, function (err, ack) {
      if (err) {
        setStatus(errorText("timeout"), "error");
        return;
      }
      if (ack.ok) {
        // Cleared only once sent (and only if not retyped meanwhile): a failed send keeps the text.
        if (messageInput.value === text) messageInput.value = "";
        setStatus("");
        if (slowSeconds && !(me && me.role === "moderator")) cooldown(slowSeconds);
        return;
      }
      setStatus(errorText(ack.error), "error");
      if (ack.error === "slow_mode") cooldown(slowSeconds || 1);
      if (ack.error === "rate_limited") cooldown(2);
      if (ack.error === "banned") setCanSend(false);
      if (ack.error === "not_joined") join(me ? me.name : storedName(), false);
    });
  });

  nameForm.addEventListener("submit", function (event) {
    event.preventDefault();
    const name = nameInput.value.trim().replace(/\s+/g, " ");
    if (!name || (me && name === me.name)) return;
    join(name, true);
  });

  slowSelect.addEventListener("change", function () {
    moderate("slow_mode", { channel: slug, seconds: parseInt(slowSelect.value, 10) });
  });

  document.getElementById("mod-off").addEventListener("click", function () {
    try {
      localStorage.removeItem(TOKEN_KEY);
    } catch (_err) {}
    socket.auth = {};
    showModerator(false);
    me = null;
    socket.disconnect().connect();
  });

  // ---------------------------------------------------------------- start

  setViewers(parseInt(root.dataset.viewers, 10) || 0);
  chooseVideoCodec().then(function (preference) {
    videoPreference = preference;
    // the chat socket may have started the player already: start again with the preference
    if (live && !replaying && (!hls || preference)) startPlayer(liveSrc);
  });
})();
