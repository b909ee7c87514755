// The <iframe> another site pastes to show a channel's player and chat (README "Embeds"), for
// this server's address as the browser reaches it. The watch page and the dashboard show it.
(function () {
  "use strict";

  window.Onair = window.Onair || {};

  function attribute(text) {
    return text.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;");
  }

  window.Onair.embedCode = function (slug, title) {
    return '<iframe src="' + location.origin + "/embed/" + encodeURIComponent(slug) + '?chat=1"' +
      ' width="960" height="400" title="' + attribute(title) + '"' +
      ' allow="autoplay; fullscreen" allowfullscreen style="border:0"></iframe>';
  };
})();
