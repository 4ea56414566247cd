// deskbridge admin: tells the server the browser's time zone at sign-in (so every time on the
// dashboard is shown in it), asks before retrying many deliveries at once, and reloads the
// overview while it is open, unless the admin pauses that. The dashboard works without this
// script (times are then in server.admin_time_zone, and the overview does not reload itself).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var zone = "";
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) {
    zone = "";
  }
  document.querySelectorAll("input[name=tz]").forEach(function (input) {
    input.value = zone;
  });
  // Retrying many deliveries asks once, saying how many.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
  // The overview reloads itself every few seconds while it is shown, not while the admin
  // reads something they opened, types, or has paused it (remembered for this tab).
  var main = document.querySelector("main[data-refresh]");
  var status = document.getElementById("refresh");
  var toggle = document.getElementById("refresh-toggle");
  if (!main || !status || !toggle) {
    return;
  }
  var seconds = Math.max(5, Number(main.getAttribute("data-refresh")) || 30);
  var key = "deskbridge-overview-paused";
  var paused = false;
  try {
    paused = window.sessionStorage.getItem(key) === "1";
  } catch (e) {
    paused = false;
  }
  var show = function () {
    toggle.textContent = paused ? "Resume updates" : "Pause updates";
    toggle.setAttribute("aria-pressed", paused ? "true" : "false");
    status.firstChild.textContent = paused
      ? "Updates are paused. "
      : "This page updates itself every " + seconds + " s. ";
  };
  toggle.addEventListener("click", function () {
    paused = !paused;
    try {
      window.sessionStorage.setItem(key, paused ? "1" : "0");
    } catch (e) {
      // Without storage the choice lasts until the next reload.
    }
    show();
  });
  status.hidden = false;
  show();
  window.setInterval(function () {
    var busy =
      document.querySelector("details[open]") ||
      (document.activeElement && document.activeElement.matches("input, select, textarea"));
    if (!paused && !busy && document.visibilityState === "visible") {
      window.location.reload();
    }
  }, seconds * 1000);
});
