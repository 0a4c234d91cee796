// emowatch console - the alerts page (alerts.html): GET /v1/history/alerts with filters (business line,
// priority, status, rule, since/until, limit); the filters live in the page URL so a search can be shared.
import {$, api, el, errorBox, header, params} from "./common.js";
import {alertRow} from "./alertview.js";

header("alerts.html");

const form = $("#alert-filters");
const FIELDS = ["business_line", "priority", "status", "rule_id", "since", "until", "limit"];
const TIMES = new Set(["since", "until"]);

/** datetime-local (the browser's local time) <-> the ISO-8601 UTC time the API takes. */
function toIso(local) {
  const d = new Date(local);
  return isNaN(d) ? "" : d.toISOString();
}

function toLocal(iso) {
  const d = new Date(iso);
  if (isNaN(d)) return "";
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d - off).toISOString().slice(0, 16);
}

function fromUrl() {
  const p = params();
  for (const name of FIELDS) {
    if (!p.has(name)) continue;
    form.elements[name].value = TIMES.has(name) ? toLocal(p.get(name)) : p.get(name);
  }
}

function query() {
  const q = new URLSearchParams();
  for (const name of FIELDS) {
    const raw = String(form.elements[name].value || "").trim();
    const value = TIMES.has(name) && raw ? toIso(raw) : raw;
    if (value) q.set(name, value);
  }
  return q;
}

async function search() {
  const q = query();
  const url = new URL(location.href);
  url.search = q.toString();
  history.replaceState(null, "", url);
  $("#alerts-error").replaceChildren();
  $("#alerts-count").textContent = "searching…";
  const tbody = $("#alerts-table tbody");
  try {
    const data = await api(`/v1/history/alerts?${q}`);
    const alerts = data.alerts || [];
    tbody.replaceChildren(...alerts.map(alertRow));
    $("#alerts-empty").hidden = alerts.length > 0;
    $("#alerts-count").textContent = `${alerts.length} alert event${alerts.length === 1 ? "" : "s"}`
      + (q.get("limit") && alerts.length >= Number(q.get("limit")) ? " (limit reached)" : "");
    const list = $("#business-lines");
    const known = new Set([...list.options].map((o) => o.value));
    for (const a of alerts) {
      if (a.business_line && !known.has(a.business_line)) {
        known.add(a.business_line);
        list.append(el("option", {value: a.business_line}));
      }
    }
    $("#alerts-table").dataset.loaded = "true";
  } catch (e) {
    tbody.replaceChildren();
    $("#alerts-count").textContent = "";
    $("#alerts-error").replaceChildren(errorBox(e, "Loading alerts"));
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  search();
});

$("#reset-filters").addEventListener("click", () => {
  form.reset();
  search();
});

fromUrl();
search();
