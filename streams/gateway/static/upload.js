// emowatch console - the upload page (index.html): a WAV file or a bundled sample -> POST /v1/analyze,
// the main emotion, the nine scores, the timeline per channel, and the call's alerts live (SSE).
import {$, api, el, emo, emojiOf, errorBox, header, liveStream, pct, secs, toast, token} from "./common.js";
import {drawTimeline, legend, probBars} from "./charts.js";
import {alertItem, alertKey} from "./alertview.js";

header("index.html");

const form = $("#upload-form");
const fileInput = $("#file-input");
const sampleSelect = $("#sample-select");
const button = $("#analyze-btn");
let chosen = null;  // {blob, name}
let samples = [];
let stream = null;
const seenAlerts = new Set();

function status(text) {
  $("#upload-status").textContent = text;
}

async function loadSamples() {
  try {
    const data = await api("/v1/samples");
    samples = data.samples || [];
    for (const s of samples) {
      sampleSelect.append(el("option", {value: s.name},
        `${s.name} — ${s.expected_mood || "?"}, ${s.duration_s ?? "?"} s, ${s.business_line || "default"}`));
    }
  } catch (e) {
    $("#sample-info").textContent = `Samples unavailable (${e}).`;
  }
}

function choose(blob, name) {
  chosen = blob ? {blob, name} : null;
  button.disabled = !chosen;
  const audio = $("#preview");
  if (audio.src) URL.revokeObjectURL(audio.src);
  audio.hidden = !chosen;
  if (chosen) audio.src = URL.createObjectURL(blob);
  else audio.removeAttribute("src");
}

fileInput.addEventListener("change", () => {
  const f = fileInput.files[0];
  if (f) sampleSelect.value = "";
  $("#sample-info").textContent = f ? `${f.name}, ${(f.size / 1024).toFixed(0)} KiB` : "";
  choose(f || null, f ? f.name : "");
});

sampleSelect.addEventListener("change", async () => {
  const s = samples.find((x) => x.name === sampleSelect.value);
  fileInput.value = "";
  choose(null);
  if (!s) { $("#sample-info").textContent = ""; return; }
  $("#sample-info").textContent = s.description || "";
  if (s.business_line) $("#business-line").value = s.business_line;
  if (s.role) $("#role").value = s.role;
  status("loading sample…");
  try {
    const res = await fetch(s.url, {headers: token() ? {Authorization: `Bearer ${token()}`} : {}});
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    if (sampleSelect.value === s.name) choose(await res.blob(), s.file || `${s.name}.wav`);
    status("");
  } catch (e) {
    status("");
    $("#upload-error").replaceChildren(errorBox(e, `Loading sample ${s.name}`));
  }
});

function newCallId() {
  const d = new Date();
  const stamp = d.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return `console-${stamp}-${Math.random().toString(36).slice(2, 6)}`;
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  if (!chosen) return;
  const publish = $("#publish").checked;
  const callId = newCallId();
  const q = new URLSearchParams({
    granularity: form.querySelector("input[name=granularity]:checked").value,
    embeddings: String($("#embeddings").checked), business_line: $("#business-line").value.trim() || "default",
    role: $("#role").value, publish: String(publish), call_id: callId,
  });
  $("#upload-error").replaceChildren();
  resetAlerts();
  if (publish) follow(callId);  // before the upload: the first alerts may come while the request still runs
  button.disabled = true;
  status(`analyzing ${chosen.name}…`);
  try {
    const res = await api(`/v1/analyze?${q}`, {method: "POST", body: chosen.blob, headers: {"Content-Type": "audio/wav"}});
    render(res);
    status("");
  } catch (e) {
    if (stream) stream.close();
    status("");
    $("#upload-error").replaceChildren(errorBox(e, "Analysis"));
  } finally {
    button.disabled = !chosen;
  }
});

function render(res) {
  const parts = res.channels && res.channels.length ? res.channels : [res];
  const labels = res.labels || parts[0].labels;
  const main = parts[0].utterance;
  const top = $("#top-emotion");
  top.dataset.emotion = main.top;
  top.replaceChildren(
    el("span", {class: "big-emoji emoji"}, main.emoji || emojiOf(main.top)),
    el("span", {}, el("span", {class: "emotion-name"}, main.top),
      el("span", {class: "confidence"}, `Confidence: ${pct(main.confidence)}`)));
  probBars($("#prob-bars"), labels, main.probs);
  const model = res.model ? ` · model ${res.model.name} ${res.model.version || ""}` : "";
  $("#result-meta").textContent = `call ${res.call_id} · ${secs(res.duration_ms)} · ${res.granularity} level${model}`
    + (res.published_chunks ? ` · ${res.published_chunks} chunks streamed` : "");
  const links = [];
  if (res.console_url) links.push(el("a", {id: "call-link", href: res.console_url}, "📄 call page (history)"));
  if (res.embedding_url) links.push(embeddingLink(res.embedding_url));
  $("#links").replaceChildren(...links);
  $("#channels").replaceChildren(...parts.map((p, i) => channelCard(p, labels, i, parts.length > 1)));
  $("#result").hidden = false;
  parts.forEach((p, i) => drawTimeline($(`#channels .timeline[data-index="${i}"] canvas`),
    {labels, ...p.timeline}, p.segments || []));
  if (!res.published_chunks && stream) { stream.close(); pipelineStatus("not streamed through the pipeline"); }
}

function channelCard(part, labels, i, stereo) {
  const u = part.utterance;
  const title = stereo ? `Emotion timeline · ${part.role}` : "Emotion timeline";
  return el("div", {class: "card timeline", id: i === 0 ? "timeline" : null, dataset: {index: String(i), role: part.role || ""}},
    el("h2", {}, title, stereo ? el("span", {class: "muted small"},
      " ", emo(u.top), ` ${u.top} ${pct(u.confidence)}`) : null),
    el("div", {class: "chart"}, el("canvas", {class: "timeline-canvas", "aria-label": "emotion probabilities over time"})),
    el("div", {class: "legend"}, legendItems(labels)),
    el("p", {class: "summary", id: i === 0 ? "summary" : null}, part.summary || "–"));
}

function legendItems(labels) {
  const holder = el("div");
  legend(holder, labels);
  return [...holder.childNodes];
}

function embeddingLink(url) {
  const a = el("a", {id: "embedding-link", href: url, download: ""}, "⬇ embedding (.npy)");
  if (token()) {  // a plain link cannot send the bearer header: fetch it and save the bytes
    a.addEventListener("click", async (ev) => {
      ev.preventDefault();
      const res = await fetch(url, {headers: {Authorization: `Bearer ${token()}`}});
      if (!res.ok) { toast(`embedding: ${res.status}`, "error"); return; }
      const blobUrl = URL.createObjectURL(await res.blob());
      el("a", {href: blobUrl, download: url.split("/").slice(-2).join("-")}).click();
      setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
    });
  }
  return a;
}

// --- the call through the pipeline: scores and alerts as they come --------------------------------------

const progress = {};  // role -> {ms, ended}

function resetAlerts() {
  if (stream) stream.close();
  stream = null;
  seenAlerts.clear();
  for (const k of Object.keys(progress)) delete progress[k];
  $("#alerts").replaceChildren();
  $("#alerts-empty").hidden = false;
  pipelineStatus("");
}

function pipelineStatus(text) {
  $("#pipeline-status").textContent = text;
}

function follow(callId) {
  stream = liveStream(`/v1/live/calls/${encodeURIComponent(callId)}`, {
    scores: (s) => {
      const p = progress[s.role] || (progress[s.role] = {ms: 0, ended: false});
      p.ms = Math.max(p.ms, s.start_ms + (s.n_frames || 0) * (s.frame_ms || 20));
      p.ended = p.ended || Boolean(s.end_of_call);
      const ms = Math.max(...Object.values(progress).map((x) => x.ms));
      const ended = Object.values(progress).every((x) => x.ended);
      pipelineStatus(`· pipeline: ${secs(ms)} scored${ended ? " · call ended" : ""}`);
      $("#pipeline-status").dataset.ended = String(ended);
    },
    alert: (a) => {
      const key = alertKey(a);
      if (seenAlerts.has(key)) return;  // at-least-once delivery: the same event may come twice
      seenAlerts.add(key);
      $("#alerts-empty").hidden = true;
      $("#alerts").append(alertItem(a));
      if (a.status === "FIRING") {
        toast(`⚠️ Alert: ${(a.labels && a.labels.rule_name) || a.rule_id} (${pct(a.value)})`, "alert");
      }
    },
  }, (state) => {
    if (state === "closed") pipelineStatus("· live updates unavailable");
  });
}

loadSamples();
