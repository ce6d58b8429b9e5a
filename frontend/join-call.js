// The embedded Teams meeting on Foyer's join page: the ACS UI Library's CallWithChat (or Call) composite.
// Bundled by esbuild (`npm run build`) into app/static/build/join-call.js, loaded only by the join page.
// It exposes one global, `FoyerCall.mount(options)`; app/static/js/join.js drives the page around it.
import { styleNonce } from "./csp-nonce.js";
import React from "react";
import { createRoot } from "react-dom/client";
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import {
  COMPOSITE_LOCALE_DE_DE,
  COMPOSITE_LOCALE_EN_US,
  CallComposite,
  CallWithChatComposite,
  createAzureCommunicationCallAdapter,
  createAzureCommunicationCallWithChatAdapter,
} from "@azure/communication-react";
import { RendererProvider, createDOMRenderer } from "@griffel/react";
import { registerIcons } from "@fluentui/react";
import { ChevronDown20Regular } from "@fluentui/react-icons";

// How long the adapter may take to reach ACS before the page offers the fallback.
const CONNECT_TIMEOUT_MS = 30000;

// Foyer's own messages; the join page passes them in its language (`strings`), these are the fallback.
const MESSAGES = {
  callTimeout: "The call service did not answer in time.",
  callCrashed: "The call view stopped working.",
  callNotConnected: "The call could not connect to the meeting.",
  callNotConnectedCode: "The call could not connect to the meeting (code {code}).",
};

function withTimeout(promise, ms, message) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The device pickers' caret (a Fluent UI icon the composites do not register themselves).
registerIcons({ icons: { chevrondown: React.createElement(ChevronDown20Regular) } });

// The composite's own words in the page's language: only the locales of Foyer's languages are bundled
// (English for any other).
const LOCALES = { de: COMPOSITE_LOCALE_DE_DE };

// The page's own heading names the event; the composite's configuration title (an SVG that measures
// its text and fails when the text has no layout yet) is left out.
function compositeLocale(language) {
  const base = LOCALES[(language || "").toLowerCase().split("-")[0]] || COMPOSITE_LOCALE_EN_US;
  return { ...base, strings: { ...base.strings, call: { ...base.strings.call, configurationPageTitle: "" } } };
}

// Whatever goes wrong inside the composite ends in Foyer's message, never in an empty page.
class Guard extends React.Component {
  constructor(props) { super(props); this.state = { failed: false }; }
  static getDerivedStateFromError() { return { failed: true }; }
  componentDidCatch(error) { this.props.onCrash(error); }
  render() { return this.state.failed ? null : this.props.children; }
}

function theme(accent) {
  if (!/^#[0-9a-fA-F]{6}$/.test(accent || "")) return undefined;
  return { palette: { themePrimary: accent, themeDark: accent, themeDarker: accent } };
}

/**
 * Mount the composite. `session` is Foyer's answer to POST /j/<token>/session; `refresh` asks Foyer
 * for a fresh session (token refresh for long events); `language` is the page's (its <html lang>) and
 * `strings` Foyer's messages in it. Returns { dispose() } once the adapter exists.
 */
async function mount({ container, session, experience, accent, nonce, language, strings,
                       refresh, onLeave, onError, onStatus }) {
  const messages = { ...MESSAGES, ...strings };
  // Fluent UI adds <style> elements at run time; the join page's CSP admits them by this nonce.
  const cspNonce = nonce || styleNonce;
  const renderer = createDOMRenderer(document, cspNonce ? { styleElementAttributes: { nonce: cspNonce } } : {});
  const userId = { communicationUserId: session.userId };
  const credential = new AzureCommunicationTokenCredential({
    token: session.token,
    refreshProactively: true,
    tokenRefresher: async () => (await refresh()).token,
  });
  // The join URL when there is one; otherwise the meeting ID and passcode (ACS's TeamsMeetingIdLocator).
  const locator = session.meetingLink
    ? { meetingLink: session.meetingLink }
    : { meetingId: session.meetingId, passcode: session.passcode };
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
    messages.callTimeout,
  );
  const root = createRoot(container);
  const Composite = withChat ? CallWithChatComposite : CallComposite;
  let crash = () => {};
  root.render(React.createElement(RendererProvider, { renderer, targetDocument: document },
    React.createElement(Guard, { onCrash: (error) => crash(error) },
      React.createElement(Composite, { adapter, fluentTheme: theme(accent), formFactor: "desktop",
                                       locale: compositeLocale(language) }))));
  FoyerCall.last = { ...FoyerCall.last, phase: "mounted" };
  onStatus && onStatus("mounted");
  let disposed = false;
  let released = false;
  const dispose = () => {
    disposed = true;
    if (released) return;
    released = true;
    try { root.unmount(); } catch (e) { /* already gone */ }
    try { adapter.dispose(); } catch (e) { /* already gone */ }
    FoyerCall.last = { ...FoyerCall.last, phase: "disposed" };
  };
  // Watch the call: a join that fails or never connects gets Foyer's message (with a retry and
  // "Open in Teams"), not a blank or stuck page.
  let watchdog = null;
  let reached = false;
  const fail = (text) => {
    if (disposed) return;
    // Unmounting inside React's own render pass is not allowed: leave that turn first.
    setTimeout(dispose, 0);
    disposed = true;
    FoyerCall.last = { ...FoyerCall.last, phase: "failed" };
    onError && onError(text);
  };
  crash = () => fail(messages.callCrashed);
  adapter.onStateChange((state) => {
    const call = state.call;
    FoyerCall.last = { ...FoyerCall.last, callState: call ? call.state : "none" };
    if (!call) return;
    if (["Connected", "InLobby", "EarlyMedia"].includes(call.state)) {
      reached = true;
      if (watchdog) { clearTimeout(watchdog); watchdog = null; }
    } else if (!reached && !watchdog && ["Connecting", "Ringing"].includes(call.state)) {
      watchdog = setTimeout(() => fail(messages.callNotConnected), CONNECT_TIMEOUT_MS);
    }
  });
  adapter.on("callEnded", (event) => {
    const reason = event && event.callEndReason;
    if (watchdog) clearTimeout(watchdog);
    if (!reached || (reason && reason.code && reason.code >= 400)) {
      fail(reason && reason.code ? messages.callNotConnectedCode.replace("{code}", reason.code)
                                 : messages.callNotConnected);
      return;
    }
    dispose();
    onLeave && onLeave();
  });
  // CallWithChat reports call errors as "callError"; the call adapter as "error".
  adapter.on(withChat ? "callError" : "error", (error) => {
    const target = (error && error.target) || "";
    if (/^(Call\.join|CallAgent|CallClient|Call\.startCall|Call\.joinCall)/i.test(target)) {
      fail(messages.callNotConnected);
    }
  });
  window.addEventListener("pagehide", dispose);
  return { dispose };
}

const FoyerCall = { mount, last: null };
window.FoyerCall = FoyerCall;
