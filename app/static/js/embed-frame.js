// Inside the frame of an embedded registration form: tell the embedding page how tall the content is, so
// its frame fits without a scroll bar. Only the website named in the page (one the admin listed; the
// server checked it) is told, through postMessage with that origin as the target.
(function () {
  "use strict";

  var parentOrigin = document.body && document.body.getAttribute("data-parent-origin");
  if (!parentOrigin || window.parent === window) return;

  var last = 0;
  function postHeight() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height === last) return;
    last = height;
    window.parent.postMessage({ type: "foyer:embed-height", height: height }, parentOrigin);
  }

  window.addEventListener("load", postHeight);
  window.addEventListener("resize", postHeight);
  document.addEventListener("htmx:afterSettle", postHeight);
  if (window.ResizeObserver) new ResizeObserver(postHeight).observe(document.documentElement);
  postHeight();
})();
