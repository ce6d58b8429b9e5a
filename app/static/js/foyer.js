// Foyer's small progressive enhancements. Every page works without this file.
(function () {
  "use strict";

  // What this file says, in the page's language: the page carries the words (#foyer-strings, from
  // components/_foyer_strings.html) with `{name}` for what is filled in; English where it has none.
  var ENGLISH = {
    zoneNote: "Start and end times below are in this zone. Preselected: {zone} (this device’s time zone).",
    copyByHand: "Press Ctrl+C (or ⌘+C) to copy the selected link.",
    copied: "Copied to the clipboard.",
    fileTooLarge: "“{name}” is {size}; the limit is {limit}. Choose a smaller file — everything else you entered " +
                  "is kept.",
    uploadTooLarge: "The upload is too large. Choose a smaller file — everything else you entered is kept.",
    requestTooLarge: "That was too much to send at once. Shorten it — everything you entered is kept."
  };

  // The words a page gives a script, in the page's language: a JSON block by id (data, not code, so the
  // CSP's script-src does not apply), `{name}` filled from `values`; the script's own English for a page
  // without the block. Read at each use: htmx may have swapped the block since (the join page's state).
  function pageBlock(blockId) {
    var block = document.getElementById(blockId);
    try { return block ? JSON.parse(block.textContent) : {}; } catch (e) { return {}; }
  }

  function pageWords(blockId, english) {
    return function (key, values) {
      return (pageBlock(blockId)[key] || english[key]).replace(/\{(\w+)\}/g, function (all, name) {
        return values && values[name] !== undefined ? String(values[name]) : all;
      });
    };
  }

  var say = pageWords("foyer-strings", ENGLISH);

  // The page's language for dates, in the browser's own variant of it when they agree (en-GB stays en-GB on
  // an English page; a German page in an English browser writes German dates).
  function pageLocale() {
    var lang = document.documentElement.lang;
    return lang && (navigator.language || "").split("-")[0] !== lang ? lang : undefined;
  }

  // Show each <time data-local> in the visitor's own time zone, naming the zone.
  function localiseTimes(root) {
    var zone;
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { return; }
    root.querySelectorAll("[data-local-time]").forEach(function (el) {
      var iso = el.getAttribute("data-local-time");
      var d = new Date(iso);
      if (isNaN(d.getTime())) return;
      var text = new Intl.DateTimeFormat(pageLocale(), {
        weekday: "short", day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit"
      }).format(d);
      el.textContent = text + " (" + zone + ")";
      var wrap = el.closest("[data-local-wrapper]");
      if (wrap) wrap.hidden = false;
    });
    // Pre-fill time-zone text inputs (the attendee's zone) that ask for the visitor's zone: "prefer" on a
    // fresh form (the server filled in the event's zone), otherwise only when left blank. Each input is
    // filled once, so what a person typed afterwards (or re-sent with an error) is never replaced.
    root.querySelectorAll("input[data-default-browser-zone]").forEach(function (input) {
      if (input.dataset.zoneFilled) return;
      input.dataset.zoneFilled = "1";
      if (input.getAttribute("data-default-browser-zone") !== "prefer" && input.value) return;
      if (zone) input.value = zone;
    });
    // Pre-fill time-zone selects that ask for the visitor's zone, and say which zone was chosen and why.
    root.querySelectorAll("select[data-default-browser-zone]").forEach(function (sel) {
      if (sel.dataset.touched) return;
      // "prefer": the device's zone wins over a preselected one (a new event); otherwise it only fills a blank.
      if (sel.getAttribute("data-default-browser-zone") !== "prefer" && sel.value && sel.value !== "UTC") return;
      for (var i = 0; i < sel.options.length; i++) {
        if ((sel.options[i].value || sel.options[i].text) === zone) {
          sel.value = zone;
          var note = document.getElementById(sel.id + "-help");
          if (note) note.textContent = say("zoneNote", { zone: zone });
          break;
        }
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
        var show = function (text) { if (status) status.textContent = text; };
        var byHand = function () { field.select(); show(say("copyByHand")); };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(field.value).then(function () { show(say("copied")); }, byHand);
        } else {
          byHand();
        }
      });
    });
  }

  // Uploads: a file larger than the field's limit is refused as soon as it is chosen, with a message
  // beside the field, so nothing typed elsewhere in the form is lost to a "too large" answer.
  function megabytes(bytes) {
    var lang = document.documentElement.lang || undefined;
    return (bytes / (1024 * 1024)).toLocaleString(lang, { maximumFractionDigits: 1, useGrouping: false }) + " MB";
  }

  function showUploadError(input, text) {
    var id = input.id + "-size-error";
    var note = document.getElementById(id);
    if (!text) {
      if (note) note.remove();
      input.removeAttribute("aria-invalid");
      return;
    }
    if (!note) {
      note = document.createElement("p");
      note.className = "error";
      note.id = id;
      note.setAttribute("role", "alert");
      input.insertAdjacentElement("afterend", note);
      var described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (described.indexOf(id) < 0) described.push(id);
      input.setAttribute("aria-describedby", described.join(" "));
    }
    note.textContent = text;
    input.setAttribute("aria-invalid", "true");
  }

  function checkUploadSizes(root) {
    root.querySelectorAll("input[type=file][data-max-bytes]").forEach(function (input) {
      if (input.dataset.sizeReady) return;
      input.dataset.sizeReady = "1";
      input.addEventListener("change", function () {
        var limit = Number(input.getAttribute("data-max-bytes"));
        var file = input.files && input.files[0];
        if (file && limit && file.size > limit) {
          input.value = "";
          showUploadError(input, say("fileTooLarge", { name: file.name, size: megabytes(file.size),
                                                       limit: megabytes(limit) }));
        } else {
          showUploadError(input, "");
        }
      });
    });
  }

  // The server refused a whole request as too large (413): htmx swaps nothing, so say it beside the file
  // fields of the form that was sent, which still holds everything typed.
  document.addEventListener("htmx:responseError", function (evt) {
    if (!evt.detail.xhr || evt.detail.xhr.status !== 413) return;
    var form = evt.detail.elt && (evt.detail.elt.closest("form") || evt.detail.elt);
    var inputs = form ? form.querySelectorAll("input[type=file]") : [];
    var text = say("uploadTooLarge");
    if (inputs.length) {
      inputs.forEach(function (input) { if (input.files && input.files.length) showUploadError(input, text); });
      var chosen = Array.prototype.filter.call(inputs, function (i) { return i.files && i.files.length; });
      (chosen[0] || inputs[0]).focus();
      if (!chosen.length) showUploadError(inputs[0], text);
    } else if (form && !form.querySelector("[data-too-large]")) {
      var box = document.createElement("div");
      box.className = "form-errors";
      box.setAttribute("role", "alert");
      box.setAttribute("data-too-large", "");
      box.textContent = say("requestTooLarge");
      form.insertAdjacentElement("afterbegin", box);
    }
  });

  function enhance(root) { localiseTimes(root); enableCopyButtons(root); checkUploadSizes(root); }

  // For the join page's and the device check's scripts, which run after this one (deferred, in order).
  window.Foyer = { pageBlock: pageBlock, pageWords: pageWords, pageLocale: pageLocale };

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  document.addEventListener("htmx:load", function (evt) { enhance(evt.target); });
})();
