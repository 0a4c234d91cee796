// emowatch console - drawing by hand: probability bars, the emotion timeline (stacked probabilities per
// step on a canvas, with the segments as a band on top), its legend, and small bars for the live board.
import {colorOf, el, emo, emojiOf, pct} from "./common.js";

/** The nine probabilities as horizontal bars, in model order; the top class is highlighted. */
export function probBars(container, labels, probs) {
  const top = probs.indexOf(Math.max(...probs));
  container.replaceChildren(...labels.map((label, i) =>
    el("div", {class: i === top ? "bar-row top" : "bar-row", dataset: {label}},
      el("span", {class: "bar-name"}, emo(label), ` ${label}`),
      el("span", {class: "bar-track"},
        el("span", {class: "bar-fill", style: {width: `${(probs[i] * 100).toFixed(2)}%`, background: colorOf(label, i)}})),
      el("span", {class: "bar-value"}, probs[i].toFixed(3)))));
  container.dataset.count = String(labels.length);
}

/** A colour swatch per class. */
export function legend(container, labels) {
  container.replaceChildren(...labels.map((label, i) =>
    el("span", {class: "legend-item"}, el("span", {class: "swatch", style: {background: colorOf(label, i)}}),
      emo(label), label)));
}

/** Risk 0..1 as a bar from green to red. */
export function riskBar(risk) {
  const r = Math.max(0, Math.min(1, Number(risk) || 0));
  return el("span", {class: "risk", title: `risk ${r.toFixed(2)}`},
    el("span", {class: "risk-track"}, el("span", {class: "risk-fill",
      style: {width: `${(r * 100).toFixed(1)}%`, background: `hsl(${120 * (1 - r)}, 70%, 45%)`}})),
    el("span", {class: "risk-value"}, r.toFixed(2)));
}

/** A probability as a thin bar in its class colour with the percentage. */
export function miniBar(p, label) {
  const v = typeof p === "number" ? p : 0;
  return el("span", {class: "mini"},
    el("span", {class: "mini-track"}, el("span", {class: "mini-fill", style: {width: `${(v * 100).toFixed(1)}%`,
      background: colorOf(label)}})),
    el("span", {class: "mini-value"}, pct(p, 0)));
}

const TICKS_S = [0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const TEXT_FONT = "11px system-ui, sans-serif";
const EMOJI_FONT = '11px "Apple Color Emoji", "Segoe UI Emoji", "Noto Color Emoji", sans-serif';
const M = {left: 40, right: 12, top: 26, bottom: 24, band: 16};

/** Draws ``timeline`` ({labels, probs: [[...]], step_ms, start_ms}) and ``segments`` on ``canvas``;
 * redrawn on resize; sets data-drawn="true" and data-steps when done. */
export function drawTimeline(canvas, timeline, segments = []) {
  canvas._timeline = {timeline, segments};
  if (!canvas._observed && window.ResizeObserver) {
    canvas._observed = new ResizeObserver(() => paint(canvas));
    canvas._observed.observe(canvas);
    canvas.addEventListener("mousemove", (ev) => hover(canvas, ev));
    canvas.addEventListener("mouseleave", () => tip(canvas, null));
  }
  paint(canvas);
}

function geometry(canvas) {
  const {timeline} = canvas._timeline;
  const step = timeline.step_ms || 200;
  const start = timeline.start_ms || 0;
  const n = (timeline.probs || []).length;
  const end = start + Math.max(1, n) * step;
  const W = canvas.clientWidth || 600, H = canvas.clientHeight || 200;
  const plotW = Math.max(10, W - M.left - M.right), plotH = Math.max(10, H - M.top - M.bottom);
  const x = (ms) => M.left + ((ms - start) / (end - start)) * plotW;
  return {step, start, end, n, W, H, plotW, plotH, x};
}

function paint(canvas) {
  if (!canvas._timeline) return;
  const {timeline, segments} = canvas._timeline;
  const g = geometry(canvas);
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(g.W * dpr);
  canvas.height = Math.round(g.H * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, g.W, g.H);
  ctx.font = TEXT_FONT;
  const labels = timeline.labels || [];
  const base = M.top + g.plotH;
  if (!g.n) {
    ctx.fillStyle = "#6b7785";
    ctx.fillText("no scores yet", M.left + 8, M.top + 20);
  }
  timeline.probs.forEach((row, i) => {  // stacked probabilities, model order from the bottom up
    const x0 = g.x(g.start + i * g.step), x1 = g.x(g.start + (i + 1) * g.step);
    let y = base;
    row.forEach((p, k) => {
      const h = p * g.plotH;
      ctx.fillStyle = colorOf(labels[k], k);
      ctx.fillRect(x0, y - h, Math.max(1, x1 - x0 + 0.6), h);
      y -= h;
    });
  });
  ctx.strokeStyle = "rgba(255,255,255,0.85)";  // grid over the bars: 25/50/75%
  ctx.fillStyle = "#4a5663";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    const y = base - v * g.plotH;
    if (v > 0 && v < 1) {
      ctx.beginPath(); ctx.moveTo(M.left, y + 0.5); ctx.lineTo(M.left + g.plotW, y + 0.5); ctx.stroke();
    }
    ctx.fillText(`${v * 100}%`, M.left - 5, y);
  }
  axis(ctx, g, base);
  band(ctx, g, segments);
  canvas.dataset.steps = String(g.n);
  canvas.dataset.drawn = "true";
}

function axis(ctx, g, base) {
  const spanS = (g.end - g.start) / 1000;
  const tick = TICKS_S.find((t) => spanS / t <= Math.max(2, g.plotW / 70)) || TICKS_S[TICKS_S.length - 1];
  ctx.strokeStyle = "#8a96a3";
  ctx.fillStyle = "#4a5663";
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.beginPath(); ctx.moveTo(M.left, base + 0.5); ctx.lineTo(M.left + g.plotW, base + 0.5); ctx.stroke();
  const first = Math.ceil(g.start / 1000 / tick) * tick;
  for (let t = first; t <= g.end / 1000 + 1e-9; t += tick) {
    const x = Math.round(g.x(t * 1000)) + 0.5;
    ctx.beginPath(); ctx.moveTo(x, base); ctx.lineTo(x, base + 4); ctx.stroke();
    const text = tick < 1 ? t.toFixed(1) : t >= 60 && tick >= 60 ? `${Math.floor(t / 60)}:${String(Math.round(t % 60)).padStart(2, "0")}` : String(Math.round(t));
    ctx.fillText(`${text}${t === first ? " s" : ""}`, Math.min(x, M.left + g.plotW - 8), base + 6);
  }
}

function band(ctx, g, segments) {  // the segments: one coloured run per top emotion, named when wide enough
  const y = M.top - M.band - 6;
  ctx.textBaseline = "middle";
  ctx.textAlign = "left";
  for (const s of segments || []) {
    const x0 = g.x(Math.max(g.start, s.start_ms)), x1 = g.x(Math.min(g.end, s.end_ms));
    if (x1 <= x0) continue;
    ctx.fillStyle = colorOf(s.emotion);
    ctx.fillRect(x0, y, x1 - x0 - 1, M.band);
    ctx.font = EMOJI_FONT;
    const ew = ctx.measureText(emojiOf(s.emotion)).width;
    ctx.font = TEXT_FONT;
    if (ew + ctx.measureText(s.emotion).width + 12 < x1 - x0) {
      ctx.font = EMOJI_FONT;
      ctx.fillText(emojiOf(s.emotion), x0 + 4, y + M.band / 2 + 1);
      ctx.font = TEXT_FONT;
      ctx.fillStyle = s.emotion === "unknown" || s.emotion === "neutral" || s.emotion === "happy" ? "#1d2630" : "#fff";
      ctx.fillText(s.emotion, x0 + 8 + ew, y + M.band / 2 + 1);
    }
  }
}

function hover(canvas, ev) {
  if (!canvas._timeline) return;
  const {timeline} = canvas._timeline;
  const g = geometry(canvas);
  const rect = canvas.getBoundingClientRect();
  const px = ev.clientX - rect.left;
  const i = Math.floor(((px - M.left) / g.plotW) * g.n);
  if (i < 0 || i >= g.n) return tip(canvas, null);
  const row = timeline.probs[i];
  const best = row.map((p, k) => [p, timeline.labels[k]]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  const t0 = (g.start + i * g.step) / 1000, t1 = t0 + g.step / 1000;
  tip(canvas, `${t0.toFixed(1)}–${t1.toFixed(1)} s · ` + best.map(([p, l]) => `${emojiOf(l)} ${l} ${pct(p, 0)}`).join(" · "),
    px);
}

function tip(canvas, text, px = 0) {
  const holder = canvas.parentElement;
  let t = holder.querySelector(".chart-tip");
  if (!text) { if (t) t.hidden = true; return; }
  if (!t) { t = el("div", {class: "chart-tip"}); holder.append(t); }
  t.hidden = false;
  t.textContent = text;
  t.style.left = `${Math.max(0, Math.min(px + 12, holder.clientWidth - t.offsetWidth - 4))}px`;
}
