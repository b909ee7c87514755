// The channel page's live panel: source, input rate, each rung, warnings in words, the ladder's
// events, and bar charts of the last hour's viewers and chat messages per minute. Polls
// GET /api/channels/<slug>/live, which any host answers with what the media host reported.
(function () {
  "use strict";

  const REFRESH_MS = 3000;
  const SVG = "http://www.w3.org/2000/svg";
  const CHART_W = 600, CHART_H = 120, CHART_TOP = 4;
  const admin = window.OnairAdmin;
  const slug = document.getElementById("content").dataset.slug;
  const url = "/api/channels/" + encodeURIComponent(slug) + "/live";
  const EVENT_NAMES = {
    preset: "Faster preset",
    shed: "Shed",
    restore: "Restored",
    restart: "Restarted",
    failed: "Gave up",
  };
  const STATE_NAMES = {
    running: "running",
    backoff: "restarting",
    idle: "starting",
    failed: "failed",
    stopped: "stopped",
  };

  function el(id) {
    return document.getElementById(id);
  }

  function uptime(iso) {
    const seconds = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
    return (h ? h + " h " : "") + m + " min";
  }

  function kbps(value) {
    return value >= 1000 ? (value / 1000).toFixed(1) + " Mbit/s" : value + " kbit/s";
  }

  function sourceText(source) {
    if (!source) return "probing…";
    const codec = source.codec.toUpperCase() + (source.profile ? " " + source.profile : "");
    const audio = source.audio ? ", " + source.audio.toUpperCase() + " audio" : ", no audio";
    return codec + ", " + source.width + "×" + source.height + " at " +
      Number(source.fps.toFixed(2)) + " fps" + audio;
  }

  function inputText(sent) {
    if (!sent) return "not measured (nginx-rtmp did not answer)";
    if (!sent.kbps) return "measuring (nginx-rtmp counts it every few seconds)";
    return kbps(sent.kbps) + " (video " + kbps(sent.video_kbps) + ", audio " +
      kbps(sent.audio_kbps) + ")";
  }

  function cell(row, label, text, className) {
    const td = document.createElement("td");
    td.dataset.label = label;
    td.textContent = text;
    if (className) td.className = className;
    row.append(td);
  }

  function presetText(rung) {
    if (rung.copy) return "copy (no re-encode)";
    const codec = rung.codec === "av1" ? "SVT-AV1 preset " : "";
    const step = rung.preset_step;
    return codec + rung.preset + (step ? " (" + step + (step === 1 ? " step" : " steps") +
      " faster than configured)" : "");
  }

  function showRungs(ladder) {
    const body = el("live-rungs");
    body.replaceChildren.apply(body, ladder.rungs.map(function (rung) {
      const row = document.createElement("tr");
      row.dataset.rung = rung.name;
      cell(row, "Rung", rung.name, "rung-name");
      cell(row, "Codec", rung.codec.toUpperCase());
      cell(row, "Size", rung.width + "×" + rung.height +
        (rung.copy ? "" : ", " + kbps(rung.kbps)));
      cell(row, "Speed", rung.speed === null ? "…" : rung.speed.toFixed(2) + "×",
        "num" + (rung.behind ? " error" : ""));
      cell(row, "Preset", presetText(rung));
      cell(row, "State", STATE_NAMES[rung.state] || rung.state);
      return row;
    }));
    ladder.shed.forEach(function (name) {
      const row = document.createElement("tr");
      row.dataset.rung = name;
      row.className = "shed";
      cell(row, "Rung", name, "rung-name");
      cell(row, "State", "shed: comes back when the CPU has room");
      body.append(row);
    });
  }

  function showEvents(events) {
    const list = el("live-events");
    list.replaceChildren.apply(list, events.slice().reverse().map(function (event) {
      const li = document.createElement("li");
      [EVENT_NAMES[event.kind] || event.kind, event.rung, event.detail,
        new Date(event.at).toLocaleTimeString()].forEach(function (text) {
        const span = document.createElement("span");
        span.textContent = text;
        li.append(span);
      });
      return li;
    }));
    el("live-events-empty").hidden = events.length > 0;
  }

  // Bars, one per minute, oldest on the left, scaled to the peak the caption names.
  function chart(id, points, field, what) {
    const svg = el(id);
    const values = points.map(function (p) { return p[field]; });
    const peak = Math.max.apply(null, values.concat([0]));
    const width = CHART_W / Math.max(1, values.length);
    const shapes = values.map(function (value, i) {
      const rect = document.createElementNS(SVG, "rect");
      const h = peak ? (value / peak) * (CHART_H - CHART_TOP) : 0;
      rect.setAttribute("x", String(i * width + 1));
      rect.setAttribute("width", String(Math.max(1, width - 2)));
      rect.setAttribute("y", String(CHART_H - h));
      rect.setAttribute("height", String(h));
      rect.setAttribute("class", "bar");
      return rect;
    });
    const now = values.length ? values[values.length - 1] : 0;
    svg.replaceChildren.apply(svg, shapes);
    el(id + "-peak").textContent = "peak " + peak + ", now " + now;
    svg.setAttribute("aria-label", what + " over the last hour: peak " + peak + ", now " + now);
  }

  function show(panel) {
    const badge = el("live-badge");
    badge.textContent = panel.live ? "Live" : "Offline";
    badge.classList.toggle("live", panel.live);
    const warnings = el("live-warnings");
    warnings.replaceChildren.apply(warnings, panel.warnings.map(function (text) {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    el("live-now").hidden = !panel.live;
    el("live-offline").hidden = panel.live;
    if (panel.live) {
      el("live-source").textContent = sourceText(panel.source);
      el("live-input").textContent = inputText(panel.input);
      el("live-uptime").textContent = uptime(panel.started_at);
      el("live-viewers").textContent = String(panel.viewers);
      el("live-host").textContent = panel.host;
      el("live-ladder-starting").hidden = panel.ladder !== null;
      el("live-rungs-table").hidden = panel.ladder === null;
      if (panel.ladder) showRungs(panel.ladder);
    }
    showEvents(panel.ladder ? panel.ladder.events : []);
    chart("viewers-chart", panel.viewers_series, "viewers", "Viewers");
    chart("chat-chart", panel.chat_series, "messages", "Chat messages per minute");
  }

  function refresh() {
    admin.api("GET", url).then(show, admin.failed);
  }

  refresh();
  window.setInterval(refresh, REFRESH_MS);
})();
