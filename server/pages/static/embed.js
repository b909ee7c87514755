// The embeds (/embed/<slug>, ?chat=1, /embed/<slug>/chat): the player (player.js), muted until
// the viewer presses Unmute, and the chat (chat.js) where the page has it. A player without the
// chat learns the live state and viewer count from the channel API instead of a chat socket.
(function () {
  "use strict";

  const root = document.getElementById("embed");
  const slug = root.dataset.channel;
  const hasPlayer = !!document.getElementById("player");
  const hasChat = !!document.getElementById("messages");
  const POLL_MS = 10000;

  const player = hasPlayer ? window.Onair.player(root) : null;

  if (player) {
    // Browsers autoplay only muted video; one press on Unmute is the gesture they need.
    const unmute = document.getElementById("unmute");
    const showUnmute = function () {
      unmute.hidden = !player.video.muted || player.video.paused;
    };
    player.video.addEventListener("volumechange", showUnmute);
    player.video.addEventListener("playing", showUnmute);
    player.video.addEventListener("emptied", showUnmute);
    unmute.addEventListener("click", function () {
      player.video.muted = false;
      const played = player.video.play();
      if (played) played.catch(function () {});
    });
  }

  if (hasChat) {
    window.Onair.chat(root, {
      live: player ? player.setLive : function () {},
      viewers: player ? player.setViewers : function () {},
    });
  } else if (player) {
    const poll = function () {
      fetch("/api/channels/" + encodeURIComponent(slug), { credentials: "omit" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (channel) {
          if (!channel) return;
          player.setLive(!!channel.live);
          player.setViewers(channel.viewers || 0);
        })
        .catch(function () {})
        .then(function () {
          setTimeout(poll, POLL_MS);
        });
    };
    setTimeout(poll, POLL_MS);
  }
})();
