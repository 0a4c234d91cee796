// emowatch console - one alert event shown the same way everywhere: a list item (upload page, call page)
// or a table row (alerts page). Fields are those of the Alert record (topics/schemas/Alert.v*.avsc);
// history rows may carry ``ts`` instead of ``event_time``.
import {chip, el, pct, secs, when} from "./common.js";

export function alertKey(a) {
  return `${a.alert_id}|${a.status}`;
}

export function ruleName(a) {
  return (a.labels && a.labels.rule_name) || a.rule_id;
}

function eventTime(a) {
  return a.event_time ?? a.ts;
}

/** <li> for one alert event: status, rule, priority, value vs threshold, call offset, role, time. */
export function alertItem(a, extra = []) {
  const value = typeof a.threshold === "number" ? `${pct(a.value)} (threshold ${pct(a.threshold, 0)})` : pct(a.value);
  return el("li", {class: `alert ${String(a.status).toLowerCase()}`, dataset: {alertId: a.alert_id, status: a.status,
    rule: a.rule_id}},
    chip(a.status),
    el("span", {class: "rule", title: a.rule_id}, ruleName(a)),
    chip(a.priority || "MEDIUM"),
    a.action === "REVIEW" ? chip("review", "review") : null,
    el("span", {class: "value"}, value),
    el("span", {class: "muted"}, `at ${secs(a.fired_ms)}${a.role ? ` · ${a.role.toLowerCase()}` : ""}`),
    el("time", {class: "muted"}, when(eventTime(a))),
    ...extra);
}

/** <tr> for the alerts table. */
export function alertRow(a) {
  const callHref = `call.html?id=${encodeURIComponent(a.call_id)}`;
  return el("tr", {dataset: {alertId: a.alert_id, status: a.status, callId: a.call_id}},
    el("td", {}, when(eventTime(a))),
    el("td", {}, chip(a.status)),
    el("td", {}, chip(a.priority || "MEDIUM")),
    el("td", {}, ruleName(a), a.action === "REVIEW" ? [" ", chip("review", "review")] : null,
      el("div", {class: "muted small"}, a.rule_id)),
    el("td", {}, el("a", {href: callHref, class: "call-link"}, a.call_id)),
    el("td", {}, a.business_line || "–"),
    el("td", {}, (a.role || "–").toLowerCase()),
    el("td", {class: "num"}, pct(a.value)),
    el("td", {class: "num"}, secs(a.fired_ms)));
}
