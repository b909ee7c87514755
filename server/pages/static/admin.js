// The admin channels page: everything goes through the JSON API with the session cookie and
// the page's CSRF token; the list refreshes every few seconds (live state, viewers, uptime).
// Text goes in through textContent and attributes, never HTML.
(function () {
  "use strict";

  const REFRESH_MS = 4000;
  const admin = window.OnairAdmin;
  const api = admin.api, say = admin.say, copyText = admin.copyText, button = admin.button;
  const rows = document.querySelector("#channels tbody");
  const empty = document.getElementById("channels-empty");
  const keyPanel = document.getElementById("key-panel");
  let refreshTimer = null;

  function channelPath(slug) {
    return "/api/channels/" + encodeURIComponent(slug);
  }

  function uptime(startedAt) {
    if (!startedAt) return "";
    const seconds = Math.max(0, Math.floor((Date.now() - Date.parse(startedAt)) / 1000));
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    return h ? h + " h " + m + " min" : m ? m + " min" : seconds + " s";
  }

  function showKey(slug, key) {
    document.getElementById("key-channel").textContent = slug;
    document.getElementById("stream-key").textContent = key;
    keyPanel.hidden = false;
    keyPanel.scrollIntoView({ block: "nearest" });
    document.getElementById("copy-key").focus();
  }

  function hideKey() {
    document.getElementById("stream-key").textContent = "";
    keyPanel.hidden = true;
  }

  function makeRow(channel) {
    const slug = channel.slug;
    const tr = document.createElement("tr");
    tr.dataset.slug = slug;

    const name = document.createElement("td");
    name.className = "channel-name";
    const titleForm = document.createElement("form");
    titleForm.className = "title-form";
    const title = document.createElement("input");
    title.name = "title";
    title.maxLength = 200;
    title.required = true;
    title.setAttribute("aria-label", "Title of " + slug);
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Save title";
    titleForm.append(title, save);
    titleForm.addEventListener("submit", function (event) {
      event.preventDefault();
      api("PATCH", channelPath(slug), { title: title.value }).then(function (updated) {
        title.value = updated.title;
        say("Title of " + slug + " saved.");
      }, admin.failed);
    });
    const link = document.createElement("a");
    link.href = "/watch/" + encodeURIComponent(slug);
    link.textContent = "/watch/" + slug;
    link.className = "slug";
    const manage = document.createElement("a");
    manage.href = "/admin/channels/" + encodeURIComponent(slug);
    manage.textContent = "Manage";
    manage.setAttribute("aria-label", "Manage " + slug);
    manage.className = "manage";
    name.append(titleForm, link, manage);

    const state = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge";
    state.append(badge);
    const viewers = document.createElement("td");
    viewers.className = "num";
    const up = document.createElement("td");
    up.className = "num";
    state.dataset.label = "State";
    viewers.dataset.label = "Viewers";
    up.dataset.label = "Uptime";

    const actions = document.createElement("td");
    actions.className = "actions";
    const rotate = button("Rotate key", function () {
      api("POST", channelPath(slug) + "/rotate-key").then(function (data) {
        showKey(slug, data.stream_key);
        say("New stream key for " + slug + ": the old one no longer works;" +
          " a live stream on it stops within 15 s.");
        refresh();
      }, admin.failed);
    });
    const toggle = button("Disable", function () {
      const disable = toggle.textContent === "Disable";
      api("PATCH", channelPath(slug), { disabled: disable }).then(function (updated) {
        update(tr, updated);
        say(disable ? slug + " is disabled: nobody can publish to it." : slug + " is enabled.");
      }, admin.failed);
    });
    toggle.className = "toggle";
    const remove = button("Delete", function () { confirmDelete(slug); }, "danger");
    actions.append(rotate, toggle, remove);

    tr.append(name, state, viewers, up, actions);
    update(tr, channel);
    return tr;
  }

  function update(tr, channel) {
    const cells = tr.children;
    const title = cells[0].querySelector("input");
    if (document.activeElement !== title) title.value = channel.title;
    const badge = cells[1].querySelector(".badge");
    const label = channel.disabled ? "Disabled" : channel.live ? "Live" : "Offline";
    badge.textContent = label;
    badge.className = "badge " + label.toLowerCase();
    cells[2].textContent = channel.live ? String(channel.viewers) : "";
    cells[3].textContent = uptime(channel.started_at);
    tr.querySelector(".toggle").textContent = channel.disabled ? "Enable" : "Disable";
    tr.classList.toggle("is-live", channel.live);
  }

  function render(channels) {
    const seen = {};
    channels.forEach(function (channel) {
      seen[channel.slug] = true;
      let tr = rows.querySelector('tr[data-slug="' + CSS.escape(channel.slug) + '"]');
      if (tr) update(tr, channel);
      else rows.append(makeRow(channel));
    });
    Array.prototype.slice.call(rows.children).forEach(function (tr) {
      if (!seen[tr.dataset.slug]) tr.remove();
    });
    empty.hidden = channels.length > 0;
  }

  function refresh() {
    clearTimeout(refreshTimer);
    return fetch("/api/channels", { credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : Promise.reject(new Error("HTTP " + response.status));
      })
      .then(render)
      .catch(function () { /* keep the last list; the next refresh tries again */ })
      .then(function () { refreshTimer = setTimeout(refresh, REFRESH_MS); });
  }

  function confirmDelete(slug) {
    admin.confirmThen("Delete channel " + slug + "?", function () {
      api("DELETE", channelPath(slug)).then(function () {
        say("Channel " + slug + " deleted.");
        if (document.getElementById("key-channel").textContent === slug) hideKey();
        refresh();
      }, admin.failed);
    });
  }

  document.getElementById("new-channel").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    const slug = form.elements.slug.value.trim();
    const body = { slug: slug };
    if (form.elements.title.value.trim()) body.title = form.elements.title.value.trim();
    api("POST", "/api/channels", body).then(function (data) {
      form.reset();
      showKey(data.slug, data.stream_key);
      say("Channel " + data.slug + " created.");
      refresh();
    }, admin.failed);
  });
  document.getElementById("copy-key").addEventListener("click", function () {
    copyText(document.getElementById("stream-key").textContent, "Stream key");
  });
  document.getElementById("copy-server").addEventListener("click", function () {
    copyText(document.getElementById("obs-server").textContent, "Server");
  });
  document.getElementById("key-done").addEventListener("click", hideKey);

  refresh();
})();
