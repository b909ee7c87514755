// The channel page's Simulcast section: destinations (name, server, masked key, the relay's
// state in words), "Add destination", Disable/Enable, "New key" and "Delete". Polled every 3 s
// while the page is open, except while a new key is being typed.
(function () {
  "use strict";

  const REFRESH_MS = 3000;
  const admin = window.OnairAdmin;
  const api = admin.api, say = admin.say, button = admin.button;
  const slug = document.getElementById("content").dataset.slug;
  const base = "/api/channels/" + encodeURIComponent(slug) + "/destinations";
  const list = document.getElementById("destinations");
  let editing = false;

  function clock(iso) {
    return new Date(iso).toLocaleTimeString();
  }

  function sent(bytes) {
    if (!bytes) return "";
    if (bytes >= 1e9) return (bytes / 1e9).toFixed(2) + " GB sent";
    if (bytes >= 1e6) return (bytes / 1e6).toFixed(1) + " MB sent";
    return Math.round(bytes / 1e3) + " kB sent";
  }

  // What the relay is doing, in words.
  function stateWords(d) {
    if (!d.enabled) return "Disabled";
    if (d.state === "live") return "Live since " + clock(d.since);
    const error = d.last_error || "the relay stopped";
    if (d.state === "connecting") return "Connecting…" + (d.last_error ? " (" + error + ")" : "");
    if (d.state === "failing") return "Failing: " + error + "; retrying";
    return "Idle: relayed while the channel is live";
  }

  function span(text, className) {
    const s = document.createElement("span");
    s.textContent = text;
    if (className) s.className = className;
    return s;
  }

  function change(d, body, words) {
    api("PATCH", "/api/destinations/" + d.id, body).then(function () {
      say(words);
      refresh();
    }, admin.failed);
  }

  // "New key": a field for the key in the row, saved with "Save key".
  function newKeyForm(d, li) {
    editing = true;
    const form = document.createElement("form");
    form.className = "inline-form";
    const id = "destination-key-" + d.id;
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = "New stream key for " + d.name;
    const input = document.createElement("input");
    input.id = id;
    input.type = "password";
    input.required = true;
    input.maxLength = 512;
    input.autocomplete = "off";
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Save key";
    form.append(label, input, save, button("Cancel", function () {
      editing = false;
      refresh();
    }));
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      editing = false;
      change(d, { key: input.value.trim() }, "New key saved for " + d.name + ".");
    });
    li.append(form);
    input.focus();
  }

  function row(d) {
    const li = document.createElement("li");
    li.dataset.id = String(d.id);
    li.dataset.state = d.enabled ? d.state : "disabled";
    li.append(span(d.name), span(d.server, "mono"), span(d.key, "mono"),
      span(stateWords(d), "relay-state state-" + li.dataset.state));
    if (d.bytes_sent) li.append(span(sent(d.bytes_sent)));
    li.append(
      d.enabled
        ? button("Disable", function () { change(d, { enabled: false }, d.name + " disabled."); })
        : button("Enable", function () { change(d, { enabled: true }, d.name + " enabled."); }),
      button("New key", function () { newKeyForm(d, li); }),
      button("Delete", function () {
        admin.confirmThen("Delete the destination " + d.name + "?", function () {
          api("DELETE", "/api/destinations/" + d.id).then(function () {
            say("Destination " + d.name + " deleted.");
            refresh();
          }, admin.failed);
        });
      }, "danger"));
    return li;
  }

  function refresh() {
    if (editing) return Promise.resolve();
    return api("GET", base).then(function (found) {
      if (editing) return;
      list.replaceChildren.apply(list, found.map(row));
      document.getElementById("destinations-empty").hidden = found.length > 0;
    });
  }

  function poll() {
    refresh()
      .catch(function () { /* keep what is shown; the next round tries again */ })
      .then(function () { setTimeout(poll, REFRESH_MS); });
  }

  document.getElementById("add-destination").addEventListener("submit", function (event) {
    event.preventDefault();
    const form = event.target;
    const body = {
      name: form.elements.name.value.trim(),
      server: form.elements.server.value.trim(),
      key: form.elements.key.value.trim(),
    };
    api("POST", base, body).then(function (made) {
      form.reset();
      say("Destination " + made.name + " added: it is relayed while the channel is live.");
      refresh();
    }, admin.failed);
  });

  poll();
})();
