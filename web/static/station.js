// The checkpoint staff page: camera scan (BarcodeDetector, else jsQR), a full-screen verdict
// (colour, word and icon: colour is never the only signal), a sound and a vibration per verdict.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const state = { scans: 0, last: "", lastAt: 0, busy: false, detector: null, stream: null };
  const ICONS = { GREEN: "✓", YELLOW: "!", RED: "✕", INVALID: "⊘" };

  function show(section) {
    for (const id of ["enrol", "scan", "verdict"]) $(id).hidden = id !== section;
  }
  function count() { $("count").textContent = HCX.t("scans", { n: state.scans }); }

  async function start() {
    HCX.apply();
    $("lang").addEventListener("click", () => { HCX.toggle(); count(); });
    $("enrol-form").addEventListener("submit", enrol);
    $("manual").addEventListener("submit", (e) => { e.preventDefault(); verify($("manual-token").value.trim()); });
    $("v-next").addEventListener("click", dismiss);
    $("sign-out").addEventListener("click", signOut);
    const { status, data } = await HCX.call("GET", "/api/session").catch(() => ({ status: 0, data: {} }));
    if (status === 200 && data.signed_in) return signedIn(data);
    show("enrol");
  }

  async function enrol(event) {
    event.preventDefault();
    $("enrol-error").textContent = "";
    const { status, data } = await HCX.call("POST", "/api/enrol", { code: $("enrol-code").value.trim() });
    if (status === 200) return signedIn(data);
    $("enrol-error").textContent = status === 429 ? HCX.t("rate_limited") : HCX.t("enrol_refused");
  }

  async function signOut() {
    await HCX.call("POST", "/api/sign-out", {}).catch(() => null);
    if (state.stream) for (const track of state.stream.getTracks()) track.stop();
    location.reload();
  }

  function signedIn(session) {
    HCX.csrf = session.csrf;
    state.scans = session.scans || 0;
    count();
    show("scan");
    camera();
  }

  async function camera() {
    try {
      state.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) {
      $("scan-status").textContent = HCX.t("camera_off");
      return;
    }
    const video = $("camera");
    video.srcObject = state.stream;
    await video.play().catch(() => null);
    if ("BarcodeDetector" in window) {
      const formats = await BarcodeDetector.getSupportedFormats().catch(() => []);
      if (formats.includes("qr_code")) state.detector = new BarcodeDetector({ formats: ["qr_code"] });
    }
    document.body.dataset.decoder = state.detector ? "BarcodeDetector" : "jsQR";
    $("scan-status").textContent = HCX.t("camera_on");
    setInterval(scanFrame, 150);
  }

  const canvas = document.createElement("canvas");
  async function scanFrame() {
    const video = $("camera");
    if (state.busy || !$("verdict").hidden || video.readyState < 2 || !video.videoWidth) return;
    let text = null;
    if (state.detector) {
      const found = await state.detector.detect(video).catch(() => []);
      text = found.length === 1 ? found[0].rawValue : null;
    } else if (window.jsQR) {
      const scale = Math.min(1, 640 / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      const context = canvas.getContext("2d", { willReadFrequently: true });
      context.drawImage(video, 0, 0, canvas.width, canvas.height);
      const image = context.getImageData(0, 0, canvas.width, canvas.height);
      const code = jsQR(image.data, image.width, image.height, { inversionAttempts: "dontInvert" });
      text = code ? code.data : null;
    }
    if (!text) return;
    const now = Date.now();
    if (text === state.last && now - state.lastAt < 4000) return;  // the same code held up
    state.last = text;
    state.lastAt = now;
    verify(text);
  }

  async function verify(token) {
    if (!token || state.busy) return;
    state.busy = true;
    $("scan-status").textContent = HCX.t("checking");
    try {
      const { status, data } = await HCX.call("POST", "/api/verify", { token }, 3000);
      $("net-status").hidden = true;
      if (status === 200) {
        state.scans = data.scans;
        count();
        return verdict(data);
      }
      if (status === 401) return location.reload();
      verdict({ verdict: "INVALID", reason: data.reason || "INTERNAL_ERROR", message: data.message || "" });
    } catch (e) {
      $("net-status").textContent = HCX.t("station_unreachable");
      $("net-status").hidden = false;
    } finally {
      state.busy = false;
      $("scan-status").textContent = HCX.t("camera_on");
    }
  }

  function verdict(v) {
    const key = v.verdict === "INVALID" ? "INVALID" : v.colour;
    const box = $("verdict");
    box.dataset.verdict = v.verdict;
    box.dataset.colour = v.colour || "";
    box.dataset.reason = v.reason || "";
    box.dataset.source = v.source || "";
    box.className = "verdict-" + key.toLowerCase();
    $("v-icon").textContent = ICONS[key] || "?";
    $("v-word").textContent = HCX.t(v.verdict);
    $("v-colour").textContent = v.verdict === "INVALID" ? "" : HCX.t(v.colour);
    $("v-holder").textContent = v.masked_name ? HCX.t("holder", { name: v.masked_name, tail: v.id_tail }) : "";
    $("v-reason").textContent = v.verdict === "INVALID" ? HCX.reason(v.reason, v.message) : "";
    $("v-age").textContent = v.verdict === "VALID_OFFLINE" ? HCX.t("offline_age", { age: HCX.duration(v.colour_age_seconds) }) : "";
    $("net-status").hidden = v.source !== "station";
    if (v.source === "station") $("net-status").textContent = HCX.t("gateway_down");
    show("verdict");
    signal(key);
    clearTimeout(state.timer);
    state.timer = setTimeout(dismiss, key === "GREEN" ? 2500 : 6000);
  }

  function dismiss() { clearTimeout(state.timer); show("scan"); }

  // One tone pattern and one vibration per verdict: told apart without looking.
  const PATTERNS = {
    GREEN: { tones: [[880, 0.12]], vibrate: [80] },
    YELLOW: { tones: [[660, 0.12], [660, 0.12]], vibrate: [120, 80, 120] },
    RED: { tones: [[330, 0.6]], vibrate: [500] },
    INVALID: { tones: [[220, 0.25], [180, 0.35]], vibrate: [250, 100, 400] },
  };
  let audio = null;
  function signal(key) {
    const pattern = PATTERNS[key] || PATTERNS.INVALID;
    document.body.dataset.signal = key;
    if (navigator.vibrate) navigator.vibrate(pattern.vibrate);
    try {
      audio = audio || new AudioContext();
      let at = audio.currentTime;
      for (const [frequency, length] of pattern.tones) {
        const osc = audio.createOscillator();
        const gain = audio.createGain();
        osc.frequency.value = frequency;
        gain.gain.value = 0.2;
        osc.connect(gain).connect(audio.destination);
        osc.start(at);
        osc.stop(at + length);
        at += length + 0.08;
      }
    } catch (e) { /* no audio device: the vibration and the screen remain */ }
  }

  document.addEventListener("DOMContentLoaded", start);
})();
