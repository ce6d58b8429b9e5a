// The device check: a camera preview and a microphone level, from the browser's own media APIs.
(function () {
  "use strict";

  var start = document.getElementById("device-start");
  if (!start) return;
  var stop = document.getElementById("device-stop");
  var status = document.getElementById("device-status");
  var preview = document.getElementById("device-preview");
  var video = document.getElementById("device-video");
  var meter = document.getElementById("device-level");
  var stream = null, audio = null, frame = null;

  // What the check says, in the page's language (the template's #device-check-strings), else in English.
  var ENGLISH = {
    blocked: "Your browser blocked the camera or microphone. Allow them for this site (see the help below), then start the check again.",
    notFound: "No camera or microphone was found. Plug one in, then start the check again.",
    busy: "Another app is using your camera or microphone. Close it, then start the check again.",
    unsupported: "This browser cannot use a camera or microphone here. Use a current Chrome, Edge, Firefox or Safari.",
    asking: "Asking your browser for the camera and microphone…",
    working: "Working: {camera}, {microphone}. Speak to see the level move.",
    cameraOn: "camera on",
    noCamera: "no camera",
    microphoneOn: "microphone on",
    noMicrophone: "no microphone",
    failed: "The check could not start: {problem}.",
    unknownProblem: "unknown problem",
    stopped: "Check stopped. Your camera and microphone are off."
  };
  // The browser's refusals that have help of their own.
  var HELP = { NotAllowedError: "blocked", NotFoundError: "notFound", NotReadableError: "busy" };

  var say = window.Foyer.pageWords("device-check-strings", ENGLISH);

  function finish() {
    if (frame) cancelAnimationFrame(frame);
    if (audio) audio.close();
    if (stream) stream.getTracks().forEach(function (t) { t.stop(); });
    stream = audio = frame = null;
    video.srcObject = null;
    preview.hidden = true;
    start.hidden = false;
  }

  function level(analyser, data) {
    analyser.getByteTimeDomainData(data);
    var peak = 0;
    for (var i = 0; i < data.length; i++) peak = Math.max(peak, Math.abs(data[i] - 128));
    var value = Math.min(100, Math.round(peak / 128 * 100));
    meter.value = value;
    meter.textContent = value;
    frame = requestAnimationFrame(function () { level(analyser, data); });
  }

  start.addEventListener("click", function () {
    if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
      status.textContent = say("unsupported");
      return;
    }
    status.textContent = say("asking");
    navigator.mediaDevices.getUserMedia({ audio: true, video: true }).then(function (s) {
      stream = s;
      video.srcObject = s;
      preview.hidden = false;
      start.hidden = true;
      var cams = s.getVideoTracks().length, mics = s.getAudioTracks().length;
      status.textContent = say("working", { camera: say(cams ? "cameraOn" : "noCamera"),
                                            microphone: say(mics ? "microphoneOn" : "noMicrophone") });
      var Context = window.AudioContext || window.webkitAudioContext;
      if (Context && mics) {
        audio = new Context();
        var analyser = audio.createAnalyser();
        audio.createMediaStreamSource(s).connect(analyser);
        level(analyser, new Uint8Array(analyser.fftSize));
      }
      stop.focus();
    }, function (error) {
      var help = HELP[error && error.name];
      status.textContent = help ? say(help) : say("failed", { problem: error && error.message || say("unknownProblem") });
    });
  });
  stop.addEventListener("click", function () {
    finish();
    status.textContent = say("stopped");
    start.focus();
  });
  window.addEventListener("pagehide", finish);
})();
