// Foyer's embeddable registration form, for another website. The page includes this file and an element
// such as
//   <div data-foyer-register="https://foyer.example.org/embed/events/<slug>/register" data-accent="#1f5fbf">
//     <a href="https://foyer.example.org/events/<slug>/register">Register for …</a>
//   </div>
// and the element's content (a plain link, for visitors without JavaScript) is replaced by a frame with
// the form. The frame's page reports its height; only messages from that frame, from Foyer's origin, are
// believed. `data-accent` (a colour as #rrggbb) overrides the site's accent colour; `data-title` names
// the frame for screen readers. See docs/embedding.md.
(function () {
  "use strict";

  var MESSAGE = "foyer:embed-height";
  var frames = [];

  function setUp(holder) {
    if (holder.getAttribute("data-foyer-ready")) return;
    var src;
    try {
      src = new URL(holder.getAttribute("data-foyer-register"), document.baseURI);
    } catch (e) {
      return;
    }
    if (src.protocol !== "https:" && src.protocol !== "http:") return;
    holder.setAttribute("data-foyer-ready", "1");
    var accent = (holder.getAttribute("data-accent") || "").trim();
    if (/^#[0-9a-fA-F]{6}$/.test(accent)) src.searchParams.set("accent", accent.slice(1).toLowerCase());
    src.searchParams.set("parent", window.location.origin);

    var link = holder.querySelector("a");
    var frame = document.createElement("iframe");
    frame.src = src.href;
    frame.title = holder.getAttribute("data-title") || (link && link.textContent.trim()) || "Event registration";
    frame.style.display = "block";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = "40rem";
    holder.replaceChildren(frame);
    frames.push({ frame: frame, origin: src.origin });
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || data.type !== MESSAGE) return;
    var height = Number(data.height);
    if (!isFinite(height) || height <= 0 || height > 20000) return;
    frames.forEach(function (entry) {
      if (event.source === entry.frame.contentWindow && event.origin === entry.origin) {
        entry.frame.style.height = Math.ceil(height) + "px";
      }
    });
  });

  function scan() { document.querySelectorAll("[data-foyer-register]").forEach(setUp); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", scan);
  else scan();
})();
