// The embedded Teams meeting on Foyer's join page: the ACS UI Library's CallWithChat (or Call) composite.
// Bundled by esbuild (`npm run build`) into app/static/build/join-call.js, loaded only by the join page.
// It exposes one global, `FoyerCall.mount(options)`; app/static/js/join.js drives the page around it.
import React from "react";
import { createRoot } from "react-dom/client";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import {
  CallComposite,
  CallWithChatComposite,
  createAzureCommunicationCallAdapter,
  createAzureCommunicationCallWithChatAdapter,
} from "@azure/communication-react";
import { Stylesheet } from "@fluentui/react";

// How long the adapter may take to reach ACS before the page offers the fallback.
const CONNECT_TIMEOUT_MS = 30000;

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error("The call service did not answer in time.")), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function theme(accent) {
  if (!/^#[0-9a-fA-F]{6}$/.test(accent || "")) return undefined;
  return { palette: { themePrimary: accent, themeDark: accent, themeDarker: accent } };
}

/**
 * Mount the composite. `session` is Foyer's answer to POST /j/<token>/session; `refresh` asks Foyer
 * for a fresh session (token refresh for long events). Returns { dispose() } once the adapter exists.
 */
async function mount({ container, session, experience, accent, nonce, refresh, onLeave, onStatus }) {
  if (nonce) {
    // Fluent UI adds <style> elements at run time; the join page's CSP admits them by this nonce.
    Stylesheet.getInstance().setConfig({ cspSettings: { nonce } });
  }
  const userId = { communicationUserId: session.userId };
  const credential = new AzureCommunicationTokenCredential({
    token: session.token,
    refreshProactively: true,
    tokenRefresher: async () => (await refresh()).token,
  });
  const locator = { meetingLink: session.meetingLink };
  const withChat = experience !== "call_only";
  FoyerCall.last = { phase: "creating-adapter", userId: session.userId, displayName: session.displayName,
                     meetingLink: session.meetingLink, experience: withChat ? "call_with_chat" : "call_only" };
  container.dispatchEvent(new CustomEvent("foyer:call-adapter", { bubbles: true, detail: { ...FoyerCall.last } }));
  const adapter = await withTimeout(
    withChat
      ? createAzureCommunicationCallWithChatAdapter({
          endpoint: session.endpoint, userId, displayName: session.displayName, credential, locator,
        })
      : createAzureCommunicationCallAdapter({ userId, displayName: session.displayName, credential, locator }),
    CONNECT_TIMEOUT_MS,
  );
  const root = createRoot(container);
  const Composite = withChat ? CallWithChatComposite : CallComposite;
  root.render(React.createElement(Composite, { adapter, fluentTheme: theme(accent), formFactor: "desktop" }));
  FoyerCall.last = { ...FoyerCall.last, phase: "mounted" };
  onStatus && onStatus("mounted");
  let disposed = false;
  const dispose = () => {
    if (disposed) return;
    disposed = true;
    try { root.unmount(); } catch (e) { /* already gone */ }
    try { adapter.dispose(); } catch (e) { /* already gone */ }
    FoyerCall.last = { ...FoyerCall.last, phase: "disposed" };
  };
  adapter.on("callEnded", () => { dispose(); onLeave && onLeave(); });
  window.addEventListener("pagehide", dispose);
  return { dispose };
}

const FoyerCall = { mount, last: null };
window.FoyerCall = FoyerCall;
