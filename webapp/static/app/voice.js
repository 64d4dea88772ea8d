// The chat's microphone: tap to record (MediaRecorder), tap again to stop; the recording goes to
// POST /api/transcriptions and its text comes back for the composer, to read and send. The
// recording stays in memory only until it is uploaded.

import { api } from "./api.js";
import { el, icon, settings, t, toast } from "./ui.js";

const MB = 1024 * 1024;
// Stop on our own before a recording could outgrow the upload limit.
const MAX_SECONDS = 600;

function recorderType() {
  for (const type of ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"]) {
    if (window.MediaRecorder && MediaRecorder.isTypeSupported(type)) return type;
  }
  return "";
}

function newKey() {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function clock(seconds) {
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

// A microphone button, or null where voice input is not offered or the browser cannot record.
// onText(text) gets each transcript.
export function microphone({ onText }) {
  const limit = settings.voice_limit_mb;
  if (!limit || !navigator.mediaDevices || !window.MediaRecorder) return null;
  const timer = el("span", { class: "mic-timer", testid: "mic-timer", hidden: true });
  const button = el("button", { type: "button", class: "icon-btn mic-btn", testid: "mic", "aria-label": t("record_voice"), title: t("record_voice"), "aria-pressed": "false" }, icon("mic"));
  const wrap = el("span", { class: "mic-wrap" }, timer, button);
  let recorder = null;
  let stream = null;
  let started = 0;
  let ticking = null;
  let state = "idle";
  let cancelled = false;

  function show(next) {
    state = next;
    wrap.dataset.state = next;
    button.setAttribute("aria-pressed", String(next === "recording"));
    const label = next === "recording" ? t("stop_recording") : next === "sending" ? t("transcribing") : t("record_voice");
    button.setAttribute("aria-label", label);
    button.title = label;
    button.disabled = next === "sending";
    button.replaceChildren(icon(next === "recording" ? "stop" : "mic"));
    timer.hidden = next === "idle";
    if (next === "sending") timer.textContent = t("transcribing");
  }

  function release() {
    clearInterval(ticking);
    ticking = null;
    if (stream) for (const track of stream.getTracks()) track.stop();
    stream = null;
  }

  async function upload(blob, seconds) {
    if (blob.size > limit * MB) {
      toast(t("recording_too_large", { limit }), "error");
      return;
    }
    const form = new FormData();
    const type = (blob.type || "audio/webm").split(";")[0];
    const extension = type.includes("ogg") ? "ogg" : type.includes("mp4") ? "m4a" : "webm";
    form.append("file", blob, `voice.${extension}`);
    form.append("duration", String(seconds));
    const heard = await api("/api/transcriptions", { method: "POST", body: form, headers: { "Idempotency-Key": newKey() } });
    if (heard.text) onText(heard.text);
    else toast(t("no_words_heard"), "error");
  }

  async function start() {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      release();
      toast(t(error && error.name === "NotAllowedError" ? "microphone_denied" : "microphone_unavailable"), "error");
      return;
    }
    const chunks = [];
    const type = recorderType();
    recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size) chunks.push(event.data);
    });
    recorder.addEventListener("stop", async () => {
      const seconds = Math.max(1, Math.round((Date.now() - started) / 1000));
      release();
      if (cancelled) return;
      show("sending");
      try {
        await upload(new Blob(chunks, { type: recorder.mimeType || type || "audio/webm" }), seconds);
      } catch (error) {
        toast(error.message, "error");
      } finally {
        recorder = null;
        show("idle");
      }
    });
    started = Date.now();
    recorder.start(1000);
    show("recording");
    timer.textContent = clock(0);
    ticking = setInterval(() => {
      const seconds = Math.round((Date.now() - started) / 1000);
      timer.textContent = clock(seconds);
      if (seconds >= MAX_SECONDS) stop();
    }, 500);
  }

  function stop() {
    if (recorder && recorder.state !== "inactive") recorder.stop();
  }

  button.addEventListener("click", () => {
    if (state === "idle") start();
    else if (state === "recording") stop();
  });

  return {
    node: wrap,
    // Leaving the chat drops a recording in progress: nothing is uploaded.
    cancel() {
      cancelled = true;
      if (recorder && recorder.state !== "inactive") recorder.stop();
      release();
    },
  };
}
