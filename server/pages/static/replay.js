// A past broadcast's page: the recording in the player (player.js) and its chat replayed in
// step with the video. Each message's time on the recording comes from the recording's clock
// (data-clock: [[media seconds, Unix seconds], ...], one pair per captured part); seeking
// shows exactly the messages sent up to that point.
(function () {
  "use strict";

  const root = document.getElementById("replay");
  const slug = root.dataset.channel;
  const list = document.getElementById("replay-messages");
  const status = document.getElementById("replay-status");
  const started = Date.parse(root.dataset.started) / 1000;
  const ended = root.dataset.ended ? Date.parse(root.dataset.ended) / 1000 : null;
  const PAGE = 200;
  const MAX_PAGES = 50; // 10,000 messages: more than an evening's chat

  let clock = [];
  try {
    clock = JSON.parse(root.dataset.clock || "[]");
  } catch (_err) {}
  if (!clock.length) clock = [[0, started]]; // recorded before clocks were kept: its start

  const player = window.Onair.player(root);
  const video = player.video;
  player.play(root.dataset.recording, null);

  // Browsers let a page start video with sound only after the viewer did something on it: when
  // the player could not start by itself, one button does.
  const start = document.getElementById("start-replay");
  video.addEventListener("loadedmetadata", function () {
    setTimeout(function () {
      start.hidden = !video.paused || video.currentTime > 0;
    }, 300);
  });
  video.addEventListener("play", function () {
    start.hidden = true;
  });
  start.addEventListener("click", function () {
    start.hidden = true;
    const played = video.play();
    if (played) played.catch(function () {});
  });

  const when = document.getElementById("broadcast-time");
  const startedDate = new Date(root.dataset.started);
  if (!isNaN(startedDate)) when.textContent = startedDate.toLocaleString();

  // The recording's media time of a wall-clock moment: the part it fell in, and how far in.
  function mediaTime(wall) {
    let at = clock[0][0];
    let from = clock[0][1];
    clock.forEach(function (pair) {
      if (pair[1] <= wall) {
        at = pair[0];
        from = pair[1];
      }
    });
    return Math.max(0, at + (wall - from));
  }

  function clockText(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    const rest = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + rest : m + ":" + rest;
  }

  // Every piece goes in through textContent: chat text is never parsed as HTML.
  function render(message) {
    const li = document.createElement("li");
    li.className = "message";
    li.dataset.at = message.at.toFixed(1);
    const time = document.createElement("time");
    time.textContent = clockText(message.at);
    const who = document.createElement("span");
    const role = message.user.role;
    who.className = "who" + (role === "moderator" ? " is-mod" : role === "bot" ? " is-bot" : "");
    who.textContent = message.user.name;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    li.append(time, " ", who, " ", text);
    return li;
  }

  let messages = []; // {at, ...message}, by time on the recording
  let shown = 0;

  function follow() {
    const now = video.currentTime;
    let count = 0;
    while (count < messages.length && messages[count].at <= now) count += 1;
    if (count === shown) return;
    if (count > shown) {
      for (let i = shown; i < count; i += 1) list.append(render(messages[i]));
    } else {
      while (list.children.length > count) list.lastElementChild.remove();
    }
    shown = count;
    list.scrollTop = list.scrollHeight;
  }

  function load(after, pages, found) {
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (after) query.set("after", after);
    else query.set("since", new Date(started * 1000 - 1000).toISOString());
    if (ended) query.set("until", new Date(ended * 1000 + 1000).toISOString());
    return fetch("/api/channels/" + encodeURIComponent(slug) + "/messages?" + query)
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (page) {
        found = found.concat(page);
        if (page.length === PAGE && pages + 1 < MAX_PAGES) {
          return load(page[page.length - 1].id, pages + 1, found);
        }
        return found;
      });
  }

  load(null, 0, [])
    .then(function (found) {
      messages = found
        .map(function (m) {
          return Object.assign({ at: mediaTime(Date.parse(m.ts) / 1000) }, m);
        })
        .sort(function (a, b) {
          return a.at - b.at;
        });
      status.textContent = messages.length
        ? messages.length + (messages.length === 1 ? " message" : " messages") +
          " appear as the video reaches them."
        : "Nobody chatted during this broadcast.";
      follow();
    })
    .catch(function () {
      status.textContent = "The chat of this broadcast could not be loaded.";
    });

  ["timeupdate", "seeked", "seeking"].forEach(function (name) {
    video.addEventListener(name, follow);
  });
})();
