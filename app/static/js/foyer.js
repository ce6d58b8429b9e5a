// Foyer's small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // Show each <time data-local> in the visitor's own time zone, naming the zone.
  function localiseTimes(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    root.querySelectorAll("[data-local-time]").forEach(function (el) {
      var iso = el.getAttribute("data-local-time");
      var d = new Date(iso);
      if (isNaN(d.getTime())) return;
      var text = new Intl.DateTimeFormat(undefined, {
        weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
      }).format(d);
      el.textContent = text + " (" + zone + ")";
      var wrap = el.closest("[data-local-wrapper]");
      if (wrap) wrap.hidden = false;
    });
    // Pre-fill time-zone selects that ask for the visitor's zone.
    root.querySelectorAll("select[data-default-browser-zone]").forEach(function (sel) {
      if (sel.dataset.touched) return;
      if (sel.value && sel.value !== "UTC" && sel.value !== "") return;
      for (var i = 0; i < sel.options.length; i++) {
        if (sel.options[i].value === zone) { sel.value = zone; break; }
      }
    });
  }

  // "Copy" buttons next to read-only fields (e.g. an attendee's join link). Without JavaScript the field
  // can be selected and copied by hand, so the button stays hidden.
  function enableCopyButtons(root) {
    root.querySelectorAll("[data-copy-from]").forEach(function (button) {
      var field = document.getElementById(button.getAttribute("data-copy-from"));
      var status = button.parentElement.querySelector("[data-copy-status]");
      if (!field || button.dataset.copyReady) return;
      button.dataset.copyReady = "1";
      button.hidden = false;
      button.addEventListener("click", function () {
        var say = function (text) { if (status) status.textContent = text; };
        var byHand = function () { field.select(); say("Press Ctrl+C (or ⌘+C) to copy the selected link."); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(function () { say("Copied to the clipboard."); }, byHand);
        } else {
          byHand();
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { localiseTimes(document); enableCopyButtons(document); });
  document.addEventListener("htmx:load", function (evt) { localiseTimes(evt.target); enableCopyButtons(evt.target); });
})();
