// Runs before Fluent UI loads: its style sheets (merge-styles) carry the join page's CSP nonce, and it
// registers no web fonts from Microsoft's CDN (nothing is fetched from a CDN at run time; the page's
// own fonts apply).
const meta = typeof document !== "undefined" ? document.querySelector('meta[name="foyer-style-nonce"]') : null;
export const styleNonce = meta ? meta.getAttribute("content") : undefined;
if (typeof window !== "undefined") {
  window.FabricConfig = { ...(window.FabricConfig || {}), fontBaseUrl: "" };
  if (styleNonce) window.FabricConfig.mergeStyles = { cspSettings: { nonce: styleNonce } };
}
