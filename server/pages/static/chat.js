// The chat: Socket.IO room of one channel (name, messages as text only, moderation), shared
// by the watch page and the embeds. Onair.chat(root, on) finds its elements by id; on.live and
// on.viewers hear the channel's live state and viewer count, which the join answer and the
// room's events carry.
(function () {
  "use strict";

  window.Onair = window.Onair || {};

  window.Onair.chat = function (root, on) {
    const slug = root.dataset.channel;
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
      const role = message.user.role;
      const who = document.createElement("span");
      who.className = "who" + (role === "moderator" ? " is-mod" : role === "bot" ? " is-bot" : "");
      who.textContent = message.user.name;
      if (role === "moderator") who.title = "Moderator";
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = message.text;
      li.append(when, " ");
      if (role === "bot") {
        const tag = document.createElement("span");
        tag.className = "bot-tag";
        tag.textContent = "bot";
        li.append(tag, " ");
      }
      li.append(who, " ", text);
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
      if (message.user.role === "viewer") {
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
        on.viewers(ack.viewers);
        on.live(ack.live);
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
      if (event && event.channel === slug) on.viewers(event.count);
    });

    socket.on("stream", function (event) {
      if (event && event.channel === slug) on.live(!!event.live);
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

  };
})();
