// The channel list: refreshed from /api/channels every few seconds (live first), with a still
// of each live channel. Everything goes in through textContent and attributes, never HTML.
(function () {
  "use strict";

  const REFRESH_MS = 15000;
  const main = document.getElementById("content");

  function hideBrokenThumb(img) {
    img.addEventListener("error", function () {
      img.hidden = true;
    });
    // A server-rendered image may have failed before this script ran.
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) img.hidden = true;
  }

  function card(channel, stamp) {
    const li = document.createElement("li");
    li.className = "card" + (channel.live ? " is-live" : "");
    li.dataset.slug = channel.slug;
    const link = document.createElement("a");
    link.href = "/watch/" + encodeURIComponent(channel.slug);
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    if (channel.live) {
      const img = document.createElement("img");
      img.src = "/thumb/" + encodeURIComponent(channel.slug) + ".jpg?t=" + stamp;
      img.alt = "";
      img.width = 320;
      img.height = 180;
      hideBrokenThumb(img);
      thumb.append(img);
    }
    const badge = document.createElement("span");
    badge.className = "badge " + (channel.live ? "live" : "offline");
    badge.textContent = channel.live ? "Live" : "Offline";
    thumb.append(badge);
    const title = document.createElement("h2");
    title.className = "card-title";
    title.textContent = channel.title;
    const meta = document.createElement("p");
    meta.className = "card-meta";
    if (channel.live) {
      const viewers = document.createElement("span");
      viewers.className = "viewers";
      viewers.textContent = channel.viewers + " watching";
      meta.append(viewers);
    } else {
      meta.textContent = "Offline";
    }
    link.append(thumb, title, meta);
    li.append(link);
    return li;
  }

  function render(channels) {
    if (!Array.isArray(channels)) return;
    const shown = channels.filter(function (c) {
      return !c.disabled;
    });
    shown.sort(function (a, b) {
      return (b.live - a.live) || (b.live && a.live ? b.viewers - a.viewers : 0);
    });
    let ul = document.getElementById("channel-list");
    if (!ul) {
      ul = document.createElement("ul");
      ul.id = "channel-list";
      ul.className = "channel-list";
      const empty = document.getElementById("channel-list-empty");
      if (empty && shown.length) empty.remove();
      main.append(ul);
    }
    const stamp = Math.floor(Date.now() / 10000);
    ul.replaceChildren.apply(ul, shown.map(function (c) {
      return card(c, stamp);
    }));
  }

  function refresh() {
    fetch("/api/channels", { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(render)
      .catch(function () {});
  }

  document.querySelectorAll(".thumb img").forEach(hideBrokenThumb);
  setInterval(function () {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
})();
