// emowatch console - one call from history (call.html?id=): per role its timeline, segments, summary and
// utterance result, and the call's alerts with Ack per alert and a silence for the whole call.
// A call just uploaded may not be in history yet: a 404 is retried for a minute, and says so.
import {$, ApiError, api, chip, el, emo, emojiOf, errorBox, header, liveStream, params, pct, secs, setUser, toast, token,
  user, when} from "./common.js";
import {drawTimeline, legend} from "./charts.js";
import {alertItem, alertKey} from "./alertview.js";

header("call.html");

const callId = params().get("id") || "";
const RETRY_MS = 2000, RETRY_FOR_MS = 60000;
const seen = new Set();
const ackable = new Set();  // alert ids that already have an Ack button
let started = Date.now();

$("#call-id").textContent = callId || "(none)";
document.title = `emowatch · call ${callId}`;
$("#operator").value = user();
$("#operator").addEventListener("change", () => setUser($("#operator").value.trim()));

async function load() {
  if (!callId) {
    $("#call-error").replaceChildren(errorBox(new ApiError(0, "no_call_id", "give the call as call.html?id=CALL"), "Loading"));
    return;
  }
  try {
    const call = await api(`/v1/history/calls/${encodeURIComponent(callId)}`);
    $("#call-error").replaceChildren();
    render(call);
    follow();
    silences();
  } catch (e) {
    const waiting = e instanceof ApiError && e.status === 404 && Date.now() - started < RETRY_FOR_MS;
    const box = errorBox(e, `Loading call ${callId} from history`);
    if (waiting) {
      box.append(el("div", {class: "muted", id: "retrying"},
        "Not in history yet (a call just uploaded takes a few seconds to reach it) – retrying…"));
      setTimeout(load, RETRY_MS);
    } else {
      box.append(el("button", {type: "button", onclick: () => { started = Date.now(); load(); }}, "Retry"));
    }
    $("#call-error").replaceChildren(box);
  }
}

function render(call) {
  const roles = Object.entries(call.roles || {});
  const labels = call.labels || [];
  $("#call-meta").textContent = [`line ${call.business_line || "–"}`, `duration ${secs(call.duration_ms)}`,
    `${roles.length} role${roles.length === 1 ? "" : "s"}`].join(" · ");
  $("#call-timelines").replaceChildren(...roles.map(([role, r], i) => timelineCard(role, r, labels, i)));
  $("#call").hidden = false;
  reportLink();
  roles.forEach(([role, r], i) => {
    const tl = r.timeline || {probs: []};
    drawTimeline($(`#call-timelines .timeline[data-index="${i}"] canvas`), {labels: tl.labels || labels, ...tl},
      r.segments || []);
  });
  $("#call-alerts").replaceChildren();
  seen.clear();
  ackable.clear();
  for (const a of call.alerts || []) addAlert(a);
}

/** "Report (PNG)": the gateway draws the call (GET /v1/calls/{id}/report.png) and the browser opens it. With a
 * token a plain link cannot send the bearer header: the picture is fetched and opened from its bytes. */
function reportLink() {
  const a = $("#report-link");
  const url = `/v1/calls/${encodeURIComponent(callId)}/report.png`;
  a.href = url;
  a.hidden = false;
  a.onclick = token() ? async (ev) => {
    ev.preventDefault();
    const res = await fetch(url, {headers: {Authorization: `Bearer ${token()}`}});
    if (!res.ok) { toast(`report: ${res.status}`, "error"); return; }
    const blobUrl = URL.createObjectURL(await res.blob());
    el("a", {href: blobUrl, target: "_blank", rel: "noopener", download: `${callId}-report.png`}).click();
    setTimeout(() => URL.revokeObjectURL(blobUrl), 60000);
  } : null;
}

/** The role's whole-call result (softmax of its mean frame logits): emoji, class, confidence. */
function utterance(r) {
  const u = r.utterance || {};
  return el("div", {class: "top-emotion small-top", dataset: {emotion: u.top || ""}},
    el("span", {class: "big-emoji emoji"}, u.emoji || emojiOf(u.top)),
    el("span", {}, el("span", {class: "emotion-name"}, u.top || "–"),
      el("span", {class: "confidence"}, `Confidence: ${pct(u.confidence)}`)));
}

function timelineCard(role, r, labels, i) {
  const legendBox = el("div", {class: "legend"});
  legend(legendBox, labels);
  const segs = r.segments || [];
  return el("div", {class: "card timeline", id: i === 0 ? "timeline" : null, dataset: {index: String(i), role}},
    el("div", {class: "card-head"}, el("h2", {}, `Emotion timeline · ${role.toLowerCase()}`), utterance(r)),
    el("div", {class: "chart"}, el("canvas", {class: "timeline-canvas", "aria-label": `${role} emotion timeline`})),
    legendBox,
    el("p", {class: "summary"}, r.summary || "–"),
    segs.length ? el("details", {},
      el("summary", {}, `${segs.length} segment${segs.length === 1 ? "" : "s"}`),
      el("table", {class: "table compact segments"},
        el("thead", {}, el("tr", {}, el("th", {}, "from"), el("th", {}, "to"), el("th", {}, "emotion"),
          el("th", {}, "confidence"))),
        el("tbody", {}, segs.map((s) => el("tr", {},
          el("td", {class: "num"}, secs(s.start_ms)), el("td", {class: "num"}, secs(s.end_ms)),
          el("td", {}, emo(s.emotion), ` ${s.emotion}`), el("td", {class: "num"}, pct(s.confidence))))))) : null);
}

function addAlert(a) {
  const key = alertKey(a);
  if (seen.has(key)) return;
  seen.add(key);
  const extra = [];
  if (!ackable.has(a.alert_id)) {
    ackable.add(a.alert_id);
    extra.push(el("button", {type: "button", class: "ack", "data-testid": "ack", onclick: (ev) => ack(a, ev.target)},
      "✔ Ack"));
  }
  $("#call-alerts-empty").hidden = true;
  $("#call-alerts").append(alertItem(a, extra));
}

async function ack(a, button) {
  button.disabled = true;
  try {
    await api(`/v1/alerts/${encodeURIComponent(a.alert_id)}/ack`, {method: "POST",
      json: {by: user(), comment: `from the console, call ${callId}`}});
    button.replaceWith(chip(`acked by ${user()}`, "acked"));
    toast(`Acknowledged: ${(a.labels && a.labels.rule_name) || a.rule_id}`, "ok");
  } catch (e) {
    button.disabled = false;
    toast(`Ack failed: ${e}`, "error");
  }
}

$("#silence-btn").addEventListener("click", async () => {
  const button = $("#silence-btn");
  const seconds = Number($("#silence-duration").value);
  button.disabled = true;
  try {
    await api("/v1/silences", {method: "POST", json: {matchers: {call_id: callId}, duration_s: seconds, by: user(),
      comment: "silenced from the console"}});
    $("#silence-state").textContent = `🔕 Silenced for ${$("#silence-duration").selectedOptions[0].text} by ${user()}.`;
    $("#silence-state").dataset.silenced = "true";
    toast("Notifications for this call are silenced", "ok");
  } catch (e) {
    $("#silence-state").replaceChildren(errorBox(e, "Silence"));
  } finally {
    button.disabled = false;
  }
});

/** Active silences that name this call (the listing's shape: {"silences": [{matchers, ends_at, created_by}]}). */
async function silences() {
  try {
    const data = await api("/v1/silences");
    const mine = (data.silences || []).filter((s) => JSON.stringify(s.matchers || "").includes(callId));
    if (mine.length) {
      const s = mine[0];
      $("#silence-state").textContent = `🔕 Silenced until ${when(s.ends_at)} by ${s.created_by || s.by || "?"}.`;
      $("#silence-state").dataset.silenced = "true";
    }
  } catch { /* the silences listing is optional here */ }
}

/** New alerts while the page is open (the call may still be going on). */
let following = null;
function follow() {
  if (!following) following = liveStream(`/v1/live/calls/${encodeURIComponent(callId)}`, {alert: addAlert});
}

load();
