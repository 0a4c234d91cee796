// emowatch console - shared by every page: nav header, bearer token, API calls, live streams, formatting.
// Plain ES module, no build step, no network access beyond the gateway that serves it (docs/gateway.md).

const TOKEN_KEY = "emowatch.token";
const USER_KEY = "emowatch.user";

// The emoji of models/timeline.py EMOJI (tests/streams/gateway/test_console_static.py keeps the two equal).
export const EMOJI = {
  angry: "😠", disgusted: "🤢", fearful: "😨", happy: "😊", neutral: "😐",
  other: "🤔", sad: "😢", surprised: "😲", unknown: "❓",
};
// One colour per class, for bars, the timeline and the legend (labels come from the API responses); the same as
// models/timeline.py COLORS (the call report picture; tests/streams/gateway/test_console_static.py keeps them equal).
export const COLORS = {
  angry: "#d64541", disgusted: "#7d8f3a", fearful: "#8e5cc4", happy: "#f2b33d", neutral: "#a3b1bf",
  other: "#3fb5c4", sad: "#3f78c4", surprised: "#f07f3c", unknown: "#dde3e9",
};
const FALLBACK_COLORS = ["#6b8e23", "#c71585", "#20b2aa", "#b8860b", "#4682b4"];

export function colorOf(label, i = 0) {
  return COLORS[label] || FALLBACK_COLORS[i % FALLBACK_COLORS.length];
}

export function emojiOf(label) {
  return EMOJI[label] || "•";
}

/** The class emoji as an element in the colour-emoji font (text fonts carry some emoji in black and white). */
export function emo(label, extraClass = "") {
  return el("span", {class: `emoji ${extraClass}`.trim(), "aria-hidden": "true"}, emojiOf(label));
}

// --- DOM -------------------------------------------------------------------------------------------------

/** el("a", {href: "x", class: "y", dataset: {id: 1}}, "text", child) - never innerHTML, so no injection. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "style" && typeof v === "object") Object.assign(node.style, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

export function params() {
  return new URLSearchParams(location.search);
}

// --- header, token box, toasts ---------------------------------------------------------------------------

const PAGES = [["index.html", "⬆ Upload"], ["live.html", "📡 Live board"], ["alerts.html", "🔔 Alerts"]];

/** Inserts the shared header (brand, page links, token button and the hidden token box) at the top of <body>. */
export function header(active) {
  const links = PAGES.map(([href, label]) =>
    el("a", {href, class: href === active ? "active" : null, "data-testid": `nav-${href.split(".")[0]}`}, label));
  const tokenBtn = el("button", {type: "button", id: "token-toggle", class: "ghost", title: "API token",
    onclick: () => showTokenBox("")}, token() ? "🔑 token set" : "🔑 token");
  const top = el("header", {class: "top"},
    el("a", {href: "index.html", class: "brand"}, el("span", {class: "logo"}, "🎧"), "emowatch",
      el("span", {class: "sub"}, "speech-emotion monitoring")),
    el("nav", {}, links), tokenBtn);
  const box = el("form", {id: "token-box", class: "token-box", hidden: true},
    el("p", {id: "token-message", class: "muted"}),
    el("label", {for: "token-input"}, "Bearer token"),
    el("input", {id: "token-input", type: "password", autocomplete: "off", size: 34,
      placeholder: "EMOWATCH_GATEWAY__AUTH_TOKEN"}),
    el("button", {type: "submit", id: "token-save"}, "Save"),
    el("button", {type: "button", class: "ghost", onclick: () => { setToken(""); location.reload(); }}, "Forget"),
    el("button", {type: "button", class: "ghost", onclick: () => { box.hidden = true; }}, "Close"));
  box.addEventListener("submit", (ev) => {
    ev.preventDefault();
    setToken($("#token-input").value.trim());
    location.reload();
  });
  document.body.prepend(top, box, el("div", {id: "toasts", class: "toasts"}));
}

export function showTokenBox(message) {
  const box = $("#token-box");
  if (!box) return;
  $("#token-message").textContent = message || "The token is kept in this browser (localStorage) and sent as "
    + "Authorization: Bearer on API calls, access_token= on live streams.";
  box.hidden = false;
  $("#token-input").focus();
}

export function toast(text, kind = "info", ms = 6000) {
  const box = $("#toasts");
  if (!box) return;
  const t = el("div", {class: `toast ${kind}`, role: "status"}, text);
  box.append(t);
  setTimeout(() => t.remove(), ms);
}

// --- token and user --------------------------------------------------------------------------------------

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
}

function setToken(value) {
  try {
    if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
  } catch { /* private mode: the token lives for this page only */ }
}

/** Who acks and silences (remembered in this browser). */
export function user() {
  try { return localStorage.getItem(USER_KEY) || "console"; } catch { return "console"; }
}

export function setUser(value) {
  try { localStorage.setItem(USER_KEY, value || "console"); } catch { /* ignore */ }
}

/** ``path`` with ``access_token=`` added when a token is set (EventSource and WebSocket cannot send headers). */
export function withToken(path) {
  const t = token();
  if (!t) return path;
  return path + (path.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(t);
}

// --- API -------------------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }

  toString() {
    return this.status ? `${this.status} ${this.code}: ${this.message}` : `${this.code}: ${this.message}`;
  }
}

/** fetch + JSON + the gateway's error shape ``{"error": {"code", "message"}}``; 401 opens the token box. */
export async function api(path, {method = "GET", json, body, headers = {}} = {}) {
  const h = {...headers};
  if (token()) h.Authorization = `Bearer ${token()}`;
  let payload = body;
  if (json !== undefined) {
    h["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  }
  let res;
  try {
    res = await fetch(path, {method, headers: h, body: payload});
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the gateway (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) {
    const err = (data && data.error) || {};
    const detail = data && data.detail ? JSON.stringify(data.detail) : "";
    const message = err.message || detail || (data ? "" : text.slice(0, 200)) || res.statusText;
    if (res.status === 401) showTokenBox(`The gateway asks for a token (401 ${err.code || "unauthorized"}).`);
    throw new ApiError(res.status, err.code || `http_${res.status}`, message);
  }
  return data;
}

/** An SSE stream with JSON events: ``handlers`` maps event names to callbacks; ``onState`` gets
 * "live" | "reconnecting" | "closed". When the gateway refuses the stream, a probe call tells a missing
 * token (the token box opens) from other failures. Returns the EventSource (call .close()). */
export function liveStream(path, handlers, onState = () => {}) {
  const es = new EventSource(withToken(path));
  for (const [event, fn] of Object.entries(handlers)) {
    es.addEventListener(event, (ev) => {
      let data;
      try { data = JSON.parse(ev.data); } catch { return; }
      fn(data);
    });
  }
  es.onopen = () => onState("live");
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      onState("closed");
      api("/v1/samples").catch(() => { /* a 401 opens the token box */ });
    } else {
      onState("reconnecting");
    }
  };
  return es;
}

// --- formatting ------------------------------------------------------------------------------------------

export function pct(x, digits = 1) {
  return typeof x === "number" && isFinite(x) ? `${(x * 100).toFixed(digits)}%` : "–";
}

export function secs(ms) {
  return typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s` : "–";
}

/** 125000 -> "2:05" */
export function clock(ms) {
  if (typeof ms !== "number" || !isFinite(ms)) return "–";
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${r}` : `${m}:${r}`;
}

/** epoch ms or an ISO string -> a Date (naive ISO strings from ClickHouse are UTC). */
export function toDate(t) {
  if (t === null || t === undefined || t === "") return null;
  if (typeof t === "number") return new Date(t);
  const s = String(t);
  const iso = /[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s.replace(" ", "T") + "Z";
  const d = new Date(iso);
  return isNaN(d) ? null : d;
}

export function when(t) {
  const d = toDate(t);
  if (!d) return "–";
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

export function errorBox(err, what) {
  const status = err instanceof ApiError ? err.status : 0;
  let hint = "";
  if (status === 404) hint = "Not found.";
  else if (status === 503) hint = "The service is not available (history not configured or the broker is down).";
  else if (status === 401) hint = "A token is needed: use the 🔑 button.";
  return el("div", {class: "error", role: "alert", "data-status": status || null, "data-code": err.code || null},
    el("strong", {}, `${what} failed`), " – ", String(err), hint ? el("div", {class: "muted"}, hint) : null);
}

/** "HIGH" -> a coloured chip; status chips too. */
export function chip(text, kind) {
  return el("span", {class: `chip ${kind || String(text).toLowerCase()}`}, text);
}
