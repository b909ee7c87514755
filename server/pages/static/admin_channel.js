// One channel's admin page: moderators and other tokens (made: shown once; revoke), bans (unban),
// recordings (MP4, delete) and videos (delete). Lists refresh every few seconds through the
// JSON API.
(function () {
  "use strict";

  const REFRESH_MS = 5000;
  const admin = window.OnairAdmin;
  const api = admin.api, say = admin.say, button = admin.button;
  const slug = document.getElementById("content").dataset.slug;
  const isAdmin = document.getElementById("content").dataset.role === "admin";
  const base = "/api/channels/" + encodeURIComponent(slug);

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }

  function size(bytes) {
    if (bytes === null || bytes === undefined) return "";
    if (bytes >= 1e9) return (bytes / 1e9).toFixed(2) + " GB";
    if (bytes >= 1e6) return (bytes / 1e6).toFixed(1) + " MB";
    return Math.round(bytes / 1e3) + " kB";
  }

  function duration(seconds) {
    if (!seconds) return "";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    return m + " min " + s + " s";
  }

  // Replace a list's items with one <li> per entry; `parts(entry)` gives its text and buttons.
  function fill(listId, entries, parts) {
    const list = document.getElementById(listId);
    list.replaceChildren.apply(list, entries.map(function (entry) {
      const li = document.createElement("li");
      li.dataset.id = String(entry.id);
      parts(entry).forEach(function (part) {
        if (typeof part === "string") {
          const span = document.createElement("span");
          span.textContent = part;
          li.append(span);
        } else {
          li.append(part);
        }
      });
      return li;
    }));
    document.getElementById(listId + "-empty").hidden = entries.length > 0;
  }

  function link(text, href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  const ROLE_NAMES = {
    moderator: "moderator",
    uploader: "upload token",
    streamer: "streamer login",
    bot: "bot",
  };
  const TOKEN_USES = {
    uploader: "Shown this once: a tus client (tus-js-client, tuspy, Uppy) sends it as" +
      " Authorization: Bearer … to upload videos to this channel.",
    streamer: "Shown this once: the streamer signs in at /admin with it and manages this" +
      " channel only.",
    bot: "Shown this once: the bot sends it as Authorization: Bearer … with POST" +
      " /api/channels/" + slug + '/messages {"text": "…"} to chat here as a bot.',
  };

  function refreshTokens() {
    return api("GET", base + "/tokens").then(function (found) {
      fill("tokens", found, function (t) {
        const parts = [t.name, ROLE_NAMES[t.role] || t.role, "since " + when(t.created_at)];
        if (t.role === "streamer" && !isAdmin) return parts; // an admin's to revoke
        return parts.concat([
          button("Revoke", function () {
            api("DELETE", base + "/tokens/" + t.id).then(function () {
              say(t.role === "moderator"
                ? "Moderator " + t.name + " revoked: they lose their tools at their next action."
                : "Token " + t.name + " revoked.");
              refreshTokens();
            }, admin.failed);
          }),
        ]);
      });
    });
  }

  function refreshBans() {
    return api("GET", base + "/bans").then(function (found) {
      fill("bans", found, function (b) {
        const who = b.name || b.user_id || "an address";
        const until = b.until ? "until " + when(b.until) : "for good";
        return [who, until, button("Unban", function () {
          api("DELETE", base + "/bans/" + b.id).then(function () {
            say(who + " may chat again.");
            refreshBans();
          }, admin.failed);
        })];
      });
    });
  }

  function refreshRecordings() {
    return api("GET", base + "/recordings").then(function (found) {
      fill("recordings", found, function (r) {
        const parts = [when(r.started_at), r.state, duration(r.duration_s), size(r.bytes)];
        if (r.mp4_url) parts.push(link("MP4", r.mp4_url));
        parts.push(button("Delete", function () {
          admin.confirmThen("Delete the recording of " + when(r.started_at) + "?", function () {
            api("DELETE", "/api/recordings/" + encodeURIComponent(r.id)).then(function () {
              say("Recording deleted.");
              refreshRecordings();
            }, admin.failed);
          });
        }, "danger"));
        return parts;
      });
    });
  }

  function refreshVideos() {
    return api("GET", base + "/videos").then(function (found) {
      fill("videos", found, function (v) {
        const state = v.state === "transcoding"
          ? "transcoding " + Math.round(v.progress * 100) + " %"
          : v.state;
        const remove = button("Delete", function () {
          admin.confirmThen("Delete the video " + v.title + "?", function () {
            api("DELETE", "/api/videos/" + encodeURIComponent(v.id)).then(function () {
              say("Video deleted.");
              refreshVideos();
            }, admin.failed);
          });
        }, "danger");
        return [v.title, state, duration(v.duration_s), size(v.bytes), remove];
      });
    });
  }

  function refresh() {
    Promise.all([refreshTokens(), refreshBans(), refreshRecordings(), refreshVideos()])
      .catch(function () { /* keep what is shown; the next refresh tries again */ })
      .then(function () { setTimeout(refresh, REFRESH_MS); });
  }

  document.getElementById("add-moderator").addEventListener("submit", function (event) {
    event.preventDefault();
    const field = document.getElementById("moderator-name");
    api("POST", base + "/moderators", { name: field.value.trim() }).then(function (made) {
      field.value = "";
      const url = window.location.origin + "/watch/" + encodeURIComponent(slug) +
        "#token=" + encodeURIComponent(made.token);
      document.getElementById("moderator-link").textContent = url;
      document.getElementById("moderator-token-panel").hidden = false;
      say("Moderator " + made.name + " added.");
      refreshTokens();
    }, admin.failed);
  });
  function newToken(role, name) {
    // moderators and bots are made where their name, a chat name, is checked
    const request = role === "bot"
      ? api("POST", base + "/bots", { name: name })
      : api("POST", base + "/tokens", { role: role, name: name });
    request.then(function (made) {
      document.getElementById("new-token").textContent = made.token;
      document.getElementById("new-token-use").textContent = TOKEN_USES[role];
      document.getElementById("new-token-panel").hidden = false;
      say(ROLE_NAMES[role].charAt(0).toUpperCase() + ROLE_NAMES[role].slice(1) + " made.");
      refreshTokens();
    }, admin.failed);
  }
  document.getElementById("add-bot").addEventListener("click", function () {
    const field = document.getElementById("moderator-name");
    if (!field.reportValidity()) return;
    newToken("bot", field.value.trim());
    field.value = "";
  });
  document.getElementById("add-uploader").addEventListener("click", function () {
    newToken("uploader", "upload");
  });
  const addStreamer = document.getElementById("add-streamer");
  if (addStreamer) {
    addStreamer.addEventListener("click", function () { newToken("streamer", "streamer"); });
  }
  document.getElementById("copy-new-token").addEventListener("click", function () {
    admin.copyText(document.getElementById("new-token").textContent, "Token");
  });
  document.getElementById("rotate-key").addEventListener("click", function () {
    api("POST", base + "/rotate-key").then(function (data) {
      const key = document.getElementById("stream-key");
      key.textContent = data.stream_key;
      key.hidden = false;
      document.getElementById("copy-key").hidden = false;
      document.getElementById("key-hint").textContent =
        "Shown this once. The old key no longer works; a live stream on it stops within 15 s.";
      say("New stream key made.");
    }, admin.failed);
  });
  document.getElementById("copy-key").addEventListener("click", function () {
    admin.copyText(document.getElementById("stream-key").textContent, "Stream key");
  });
  const embedCode = document.getElementById("embed-code");
  embedCode.textContent = window.Onair.embedCode(slug, document.querySelector("h1").textContent);
  document.getElementById("copy-embed").addEventListener("click", function () {
    admin.copyText(embedCode.textContent, "Embed code");
  });
  document.getElementById("copy-server").addEventListener("click", function () {
    admin.copyText(document.getElementById("obs-server").textContent, "Server");
  });
  document.getElementById("copy-moderator-link").addEventListener("click", function () {
    admin.copyText(document.getElementById("moderator-link").textContent, "Link");
  });

  // Uploads: tus-js-client (tus 1.0) with the session cookie and the CSRF header; a dropped
  // connection is retried and resumes at the last byte the server stored.
  const UPLOAD_ERRORS = {
    401: "Your session ended: sign in again, then resume.",
    413: "That file is larger than this server takes.",
    415: "That file is not a video the server can read.",
    507: "The server's media volume is full: resume later.",
  };
  const uploadForm = document.getElementById("upload-video");
  const pauseButton = document.getElementById("upload-pause");
  const resumeButton = document.getElementById("upload-resume");
  const progress = document.getElementById("upload-progress");
  let upload = null;

  function showProgress(sent, total) {
    const percent = total ? Math.floor((sent / total) * 100) : 0;
    progress.value = percent;
    document.getElementById("upload-percent").textContent = percent + " %";
  }

  function uploadFailed(err) {
    const response = err && err.originalResponse;
    const status = response ? response.getStatus() : 0;
    let words = UPLOAD_ERRORS[status];
    if (!words && response) {
      try {
        words = JSON.parse(response.getBody()).error;
      } catch (e) {
        words = null;
      }
    }
    say("Upload failed: " + (words || "the connection dropped; press Resume to go on."), true);
    pauseButton.hidden = true;
    resumeButton.hidden = false;
  }

  uploadForm.addEventListener("submit", function (event) {
    event.preventDefault();
    const file = document.getElementById("video-file").files[0];
    if (!file || !window.tus) return;
    upload = new window.tus.Upload(file, {
      endpoint: base + "/uploads",
      headers: { "X-CSRF-Token": admin.csrf },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      chunkSize: 256 * 1024,
      retryDelays: [0, 1000, 3000, 5000],
      removeFingerprintOnSuccess: true,
      onProgress: showProgress,
      onError: uploadFailed,
      onSuccess: function () {
        showProgress(1, 1);
        say(file.name + " uploaded: it is transcoded in the background.");
        pauseButton.hidden = true;
        resumeButton.hidden = true;
        uploadForm.reset();
        refreshVideos();
      },
    });
    document.getElementById("upload-progress-row").hidden = false;
    showProgress(0, file.size);
    pauseButton.hidden = false;
    resumeButton.hidden = true;
    say("Uploading " + file.name + "…");
    upload.start();
  });
  pauseButton.addEventListener("click", function () {
    if (!upload) return;
    upload.abort();
    pauseButton.hidden = true;
    resumeButton.hidden = false;
    say("Upload paused.");
  });
  resumeButton.addEventListener("click", function () {
    if (!upload) return;
    upload.start();
    resumeButton.hidden = true;
    pauseButton.hidden = false;
    say("Uploading…");
  });

  refresh();
})();
