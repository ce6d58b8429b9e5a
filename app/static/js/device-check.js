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

  var HELP = {
    NotAllowedError: "Your browser blocked the camera or microphone. Allow them for this site (see the help below), then start the check again.",
    NotFoundError: "No camera or microphone was found. Plug one in, then start the check again.",
    NotReadableError: "Another app is using your camera or microphone. Close it, then start the check again."
  };

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
      status.textContent = "This browser cannot use a camera or microphone here. Use a current Chrome, Edge, Firefox or Safari.";
      return;
    }
    status.textContent = "Asking your browser for the camera and microphone…";
    navigator.mediaDevices.getUserMedia({ audio: true, video: true }).then(function (s) {
      stream = s;
      video.srcObject = s;
      preview.hidden = false;
      start.hidden = true;
      var cams = s.getVideoTracks().length, mics = s.getAudioTracks().length;
      status.textContent = "Working: " + (cams ? "camera on" : "no camera") + ", " + (mics ? "microphone on" : "no microphone") +
        ". Speak to see the level move.";
      var Context = window.AudioContext || window.webkitAudioContext;
      if (Context && mics) {
        audio = new Context();
        var analyser = audio.createAnalyser();
        audio.createMediaStreamSource(s).connect(analyser);
        level(analyser, new Uint8Array(analyser.fftSize));
      }
      stop.focus();
    }, function (error) {
      status.textContent = HELP[error && error.name] || ("The check could not start: " + (error && error.message || "unknown problem") + ".");
    });
  });
  stop.addEventListener("click", function () {
    finish();
    status.textContent = "Check stopped. Your camera and microphone are off.";
    start.focus();
  });
  window.addEventListener("pagehide", finish);
})();
