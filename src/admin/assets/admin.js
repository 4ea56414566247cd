// deskbridge admin: tells the server the browser's time zone at sign-in, so every time on the
// dashboard is shown in it. The dashboard works without this script (times are then in
// server.admin_time_zone).
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
  // "Retry all shown" asks once before replaying many deliveries.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) {
        event.preventDefault();
      }
    });
  });
});
