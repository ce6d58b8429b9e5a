// The join page: countdown, asking Foyer for a call session, mounting the call (app/static/build/join-call.js)
// or the sandbox stage, "still here" reports, and a clear message with a retry when anything fails.
(function () {
  "use strict";

  var page = document.getElementById("join-page");
  if (!page) return;
  var headers = {};
  try { headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (e) { headers = {}; }
  var csrf = headers["X-CSRFToken"] || "";
  var nonceMeta = document.querySelector('meta[name="foyer-style-nonce"]');
  var language = document.documentElement.lang;
  var stage = page.getAttribute("data-stage");
  var sessionUrl = page.getAttribute("data-session-url");
  var presenceUrl = page.getAttribute("data-presence-url");
  var heartbeatMs = (parseInt(page.getAttribute("data-heartbeat-seconds"), 10) || 45) * 1000;
  var message = document.getElementById("call-message");
  var messageText = document.getElementById("call-message-text");
  var area = document.getElementById("call-area");
  var container = document.getElementById("call-container");
  var sandbox = document.getElementById("sandbox-stage");
  var controller = null;
  var heartbeat = null;
  var joining = false;
  var inCall = false;

  // What the page says, in its language: the state panel carries the words of its state (#join-strings,
  // swapped in with it); English where it has none. The call bundle gets them too, for its own messages.
  var ENGLISH = {
    tooManyAttempts: "Too many attempts in a short time. Please wait a minute, then try again.",
    notStarted: "We could not start the call.",
    unreachable: "Foyer could not be reached. Check your internet connection, then try again.",
    joining: "Joining…",
    join: "Join the call",
    joinAgain: "Join the call again",
    failed: "{problem} Try again, or use “Open in Teams”.",
    unsupportedBrowser: "This browser cannot run the call inside the page. Use “Open in Teams”, or a current " +
                        "Chrome, Edge, Firefox or Safari.",
    notLoaded: "The call could not be loaded in this browser. Try again, or use “Open in Teams”.",
    microphoneBlocked: "Your browser blocked the microphone. Allow it for this site (look for the camera icon in " +
                       "the address bar), then try again. The device check on this page can help.",
    notConnected: "The call could not connect.",
    notConnectedBecause: "The call could not connect: {problem} Try again, or use “Open in Teams”.",
    hours: "{n} h",
    minutes: "{n} min",
    seconds: "{n} s"
  };

  var say = window.Foyer.pageWords("join-strings", ENGLISH);

  function pageStrings() {
    return window.Foyer.pageBlock("join-strings");
  }

  function post(url, fields) {
    var body = new URLSearchParams(fields || {});
    return fetch(url, {
      method: "POST", body: body, credentials: "same-origin", cache: "no-store",
      headers: { "X-CSRFToken": csrf, "Accept": "application/json" }
    });
  }

  function requestSession() {
    return post(sessionUrl).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || say(response.status === 429 ? "tooManyAttempts" : "notStarted"));
          error.retry = response.status === 429 || !!data.retry;
          throw error;
        }
        return data;
      });
    }, function () {
      var error = new Error(say("unreachable"));
      error.retry = true;
      throw error;
    });
  }

  function stateBox() { return document.getElementById("join-state"); }

  function showMessage(text, retry) {
    var button = document.getElementById("call-retry");
    messageText.textContent = text;
    button.hidden = !retry;
    message.hidden = false;
    // role="alert" announces the text; the focus goes where a keyboard user acts next.
    if (retry) {
      button.focus();
    } else {
      message.setAttribute("tabindex", "-1");
      message.focus();
    }
  }

  function hideMessage() { message.hidden = true; }

  function setJoinBusy(busy) {
    var button = document.getElementById("join-button");
    if (!button) return;
    button.disabled = busy;
    button.textContent = say(busy ? "joining" : "join");
  }

  function startHeartbeat() {
    stopHeartbeat();
    inCall = true;
    heartbeat = setInterval(function () { post(presenceUrl).catch(function () {}); }, heartbeatMs);
  }

  function stopHeartbeat() {
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = null;
  }

  function left() {
    stopHeartbeat();
    if (inCall) post(presenceUrl, { left: "1" }).catch(function () {});
    inCall = false;
    controller = null;
    area.hidden = true;
    if (sandbox) sandbox.hidden = true;
    var box = stateBox();
    if (box) { box.hidden = false; }
    var button = document.getElementById("join-button");
    if (button) { button.textContent = say("joinAgain"); button.focus(); }
  }

  function failed(text) {
    stopHeartbeat();
    if (inCall) post(presenceUrl, { left: "1" }).catch(function () {});
    inCall = false;
    controller = null;
    area.hidden = true;
    var box = stateBox();
    if (box) box.hidden = false;
    showMessage(say("failed", { problem: text }), true);
  }

  function browserSupported() {
    return !!(window.isSecureContext && window.RTCPeerConnection && navigator.mediaDevices &&
              navigator.mediaDevices.getUserMedia);
  }

  function microphoneAllowed() {
    // Ask once before mounting, so a blocked microphone gets Foyer's help rather than a silent call.
    return navigator.mediaDevices.getUserMedia({ audio: true }).then(function (stream) {
      stream.getTracks().forEach(function (t) { t.stop(); });
      return true;
    }, function (error) {
      var name = error && error.name;
      return !(name === "NotAllowedError" || name === "SecurityError");
    });
  }

  function showSandbox(session) {
    var expires = new Date(session.expiresOn);
    document.getElementById("sandbox-expires").textContent = isNaN(expires.getTime()) ? session.expiresOn
      : new Intl.DateTimeFormat(window.Foyer.pageLocale(), { hour: "2-digit", minute: "2-digit", timeZoneName: "short" })
        .format(expires);
    document.getElementById("sandbox-name").textContent = session.displayName;
    var box = stateBox();
    if (box) box.hidden = true;
    sandbox.hidden = false;
    sandbox.focus();
  }

  function join() {
    if (joining || inCall) return;
    joining = true;
    hideMessage();
    setJoinBusy(true);
    var done = function () { joining = false; setJoinBusy(false); };
    if (stage === "sandbox") {
      requestSession().then(function (session) {
        showSandbox(session);
        startHeartbeat();
      }).catch(function (error) {
        showMessage(error.message, error.retry !== false);
      }).then(done);
      return;
    }
    if (!browserSupported()) {
      showMessage(say("unsupportedBrowser"), false);
      done();
      return;
    }
    if (!window.FoyerCall) {
      showMessage(say("notLoaded"), true);
      done();
      return;
    }
    microphoneAllowed().then(function (allowed) {
      if (!allowed) {
        var error = new Error(say("microphoneBlocked"));
        error.retry = true;
        throw error;
      }
      return requestSession();
    }).then(function (session) {
      var box = stateBox();
      if (box) box.hidden = true;
      area.hidden = false;
      return window.FoyerCall.mount({
        container: container, session: session, experience: page.getAttribute("data-experience"),
        accent: page.getAttribute("data-accent"), nonce: nonceMeta ? nonceMeta.getAttribute("content") : null,
        language: language, strings: pageStrings(), refresh: requestSession, onLeave: left, onError: failed
      });
    }).then(function (mounted) {
      controller = mounted;
      startHeartbeat();
    }).catch(function (error) {
      if (window.console) console.warn("Foyer: the call did not start:", error && (error.stack || error));
      area.hidden = true;
      var box = stateBox();
      if (box) box.hidden = false;
      if (controller) { controller.dispose(); controller = null; }
      var text = error && error.message ? error.message : say("notConnected");
      if (error && error.retry === undefined) {
        text = say("notConnectedBecause", { problem: text });
      }
      showMessage(text, !error || error.retry !== false);
    }).then(done);
  }

  // Count down to the opening; at zero, ask for the next state at once rather than at the next poll.
  function tick() {
    document.querySelectorAll("[data-countdown-to]").forEach(function (el) {
      var left = Math.max(0, Math.round((new Date(el.getAttribute("data-countdown-to")) - Date.now()) / 1000));
      var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
      el.textContent = [h ? say("hours", { n: h }) : "", h || m ? say("minutes", { n: m }) : "", say("seconds", { n: s })]
        .filter(Boolean).join(" ");
      if (left === 0 && !el.dataset.fired && window.htmx) {
        el.dataset.fired = "1";
        window.htmx.trigger(stateBox(), "foyer:refresh");
      }
    });
  }
  setInterval(tick, 1000);
  tick();

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    if (target.closest("#join-button")) join();
    else if (target.closest("#call-retry")) join();
    else if (target.closest("#sandbox-leave")) left();
  });

  // The poll swapped in "open": open the call by itself, as the page promised.
  document.addEventListener("htmx:afterSettle", function () {
    var box = stateBox();
    if (box && box.getAttribute("data-autostart") === "true" && !box.dataset.started) {
      box.dataset.started = "1";
      join();
    }
  });

  window.addEventListener("pagehide", function () {
    if (!inCall) return;
    var data = new FormData();
    data.append("csrf_token", csrf);
    data.append("left", "1");
    navigator.sendBeacon && navigator.sendBeacon(presenceUrl, data);
  });
})();
