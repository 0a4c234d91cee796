// emowatch console - the live board (live.html): SSE /v1/live, event "board" {"calls": [...]} ranked by risk.
// Rows are keyed by call_id and updated in place (no flicker, links stay clickable); calls that left the
// board are removed.
import {$, chip, clock, el, emo, header, liveStream, params, when} from "./common.js";
import {miniBar, riskBar} from "./charts.js";

header("live.html");

const tbody = $("#board tbody");
const rows = new Map();  // call_id -> <tr>
const lines = new Set();
let es = null;

const STATES = {live: "live", reconnecting: "reconnecting…", closed: "disconnected", connecting: "connecting…"};

function setState(state) {
  const s = $("#live-state");
  s.dataset.state = state;
  s.textContent = STATES[state] || state;
}

function connect(line) {
  if (es) es.close();
  setState("connecting");
  const q = line ? `?business_line=${encodeURIComponent(line)}` : "";
  es = liveStream(`/v1/live${q}`, {board: update}, setState);
}

function alertsCell(active) {
  if (typeof active === "number") return active ? chip(`${active} firing`, "firing") : el("span", {class: "muted"}, "–");
  const list = Array.isArray(active) ? active : [];
  if (!list.length) return el("span", {class: "muted"}, "–");
  return el("span", {class: "chips"}, list.map((a) => typeof a === "string" ? chip(a, "firing")
    : chip((a.labels && a.labels.rule_name) || a.rule_name || a.rule_id, String(a.priority || "firing").toLowerCase())));
}

function activeCount(active) {
  return typeof active === "number" ? active : Array.isArray(active) ? active.length : 0;
}

function fill(tr, c) {
  const href = `call.html?id=${encodeURIComponent(c.call_id)}`;
  const roles = Array.isArray(c.roles) ? c.roles.join(", ").toLowerCase() : "";
  tr.dataset.risk = String(c.risk ?? 0);
  tr.dataset.alerts = String(activeCount(c.active_alerts));
  tr.classList.toggle("alerting", activeCount(c.active_alerts) > 0);
  tr.replaceChildren(
    el("td", {class: "risk-cell"}, riskBar(c.risk)),
    el("td", {}, el("a", {href, class: "call-link"}, c.call_id), roles ? el("div", {class: "muted small"}, roles) : null),
    el("td", {}, c.business_line || "–"),
    el("td", {class: "top"}, c.top ? [emo(c.top), ` ${c.top}`] : "–"),
    el("td", {}, miniBar(c.angry, "angry")),
    el("td", {}, miniBar(c.fearful, "fearful")),
    el("td", {}, alertsCell(c.active_alerts)),
    el("td", {class: "num"}, clock(c.duration_ms)),
    el("td", {class: "muted"}, when(c.last_event_time)));
}

function update(data) {
  const calls = data.calls || [];
  const keep = new Set();
  calls.forEach((c, i) => {
    keep.add(c.call_id);
    let tr = rows.get(c.call_id);
    if (!tr) {
      tr = el("tr", {dataset: {callId: c.call_id}, class: "new"});
      rows.set(c.call_id, tr);
      setTimeout(() => tr.classList.remove("new"), 1500);
    }
    fill(tr, c);
    if (tbody.children[i] !== tr) tbody.insertBefore(tr, tbody.children[i] || null);  // server's ranking
    if (c.business_line && !lines.has(c.business_line)) {
      lines.add(c.business_line);
      $("#business-lines").append(el("option", {value: c.business_line}));
    }
  });
  for (const [id, tr] of rows) {
    if (!keep.has(id)) { tr.remove(); rows.delete(id); }
  }
  $("#board-empty").hidden = calls.length > 0;
  $("#board-count").textContent = `${calls.length} call${calls.length === 1 ? "" : "s"} in progress`;
  $("#board").dataset.updated = String(Date.now());
}

$("#filter-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const line = $("#bl-filter").value.trim();
  const url = new URL(location.href);
  if (line) url.searchParams.set("business_line", line); else url.searchParams.delete("business_line");
  history.replaceState(null, "", url);
  for (const tr of rows.values()) tr.remove();
  rows.clear();
  connect(line);
});

const initial = params().get("business_line") || "";
$("#bl-filter").value = initial;
connect(initial);
