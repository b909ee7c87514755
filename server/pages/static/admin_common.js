// What the admin pages share: API calls with the session's CSRF token, the status line,
// copying to the clipboard, and the confirmation dialog. Loaded before each page's script.
(function () {
  "use strict";

  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  const status = document.getElementById("admin-status");
  const confirmDialog = document.getElementById("confirm-delete");

  function say(text, isError) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(isError));
  }

  // An API call's rejection, in the status line.
  function failed(err) {
    say(err.message, true);
  }

  // One API call; resolves with the JSON body (or null for 204), rejects with the API's words.
  function api(method, path, body) {
    const options = {
      method: method,
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options).then(function (response) {
      if (response.status === 401) {
        window.location.assign("/admin"); // the session ended: sign in again
        throw new Error("signed out");
      }
      if (response.status === 204) return null;
      return response.json().then(function (data) {
        if (!response.ok) throw new Error(data.error || "HTTP " + response.status);
        return data;
      });
    });
  }

  function copyText(text, what) {
    const byHand = function () {
      say("Select the " + what.toLowerCase() + " and copy it.", true);
    };
    if (!navigator.clipboard || !navigator.clipboard.writeText) return byHand();
    navigator.clipboard.writeText(text).then(function () {
      say(what + " copied.");
    }, byHand);
  }

  // Ask first; run `yes` only when the dialog's Delete button closed it.
  function confirmThen(question, yes) {
    document.getElementById("confirm-text").textContent = question;
    confirmDialog.returnValue = "";
    confirmDialog.onclose = function () {
      if (confirmDialog.returnValue === "delete") yes();
      else say("Nothing deleted.");
    };
    confirmDialog.showModal();
  }

  function button(text, onClick, className) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    if (className) b.className = className;
    b.addEventListener("click", onClick);
    return b;
  }

  window.OnairAdmin = {
    csrf: csrf,
    api: api,
    say: say,
    failed: failed,
    copyText: copyText,
    confirmThen: confirmThen,
    button: button,
  };
})();
