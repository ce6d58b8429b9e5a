// "Copy join link": copies a read-only field's value and says so. Without JavaScript the field can be
// selected and copied by hand, so the button stays hidden.
(function () {
  "use strict";
  document.querySelectorAll("[data-copy-from]").forEach(function (button) {
    var field = document.getElementById(button.getAttribute("data-copy-from"));
    var status = button.parentElement.querySelector("[data-copy-status]");
    if (!field) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      var done = function () { if (status) status.textContent = "Copied to the clipboard."; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          field.select();
          if (status) status.textContent = "Press Ctrl+C (or ⌘+C) to copy the selected link.";
        });
      } else {
        field.select();
        document.execCommand && document.execCommand("copy") ? done() : null;
      }
    });
  });
})();
