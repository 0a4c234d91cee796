"""A call's emotion timeline as a PNG (``emowatch report call``, the gateway's ``/v1/calls/{id}/report.png``).

Input: the dict :meth:`HistoryReader.call` returns (``/v1/history/calls/{id}``), optionally with ``agent``.
One panel per role: the 200 ms steps' probabilities stacked over call time in the console's class colours,
the call's FIRING alerts of that role (shaded from ``started_ms`` to ``fired_ms``, a line at ``fired_ms``,
labelled with rule id and priority) and the role's segment summary (the seed's line) under it; the title
names the call, business line, agent and duration. Matplotlib's object API with the Agg canvas (no pyplot,
no display, safe in threads). The same input gives the same bytes: PNG metadata is fixed.
"""
from __future__ import annotations

import io
import textwrap
from typing import Any

import numpy as np

from emowatch.models.timeline import COLORS, DEFAULT_STEP_MS

__all__ = ["PNG_METADATA", "render_call_png"]

#: written into every PNG instead of matplotlib's version string, so equal input gives equal bytes
PNG_METADATA = {"Software": "emowatch report"}
_FALLBACK = ("#6b8e23", "#c71585", "#20b2aa", "#b8860b", "#4682b4")
_ALERT = "#b3261e"
_SUMMARY_CHARS = 330  # about three lines under a panel; longer summaries end with an ellipsis


def _color(label: str, i: int) -> str:
    return COLORS.get(label, _FALLBACK[i % len(_FALLBACK)])


def _coarsen(probs: np.ndarray, factor: int) -> np.ndarray:
    """Mean of every ``factor`` consecutive steps (the last group may be shorter)."""
    if factor <= 1 or len(probs) == 0:
        return probs
    return np.stack([probs[i:i + factor].mean(axis=0) for i in range(0, len(probs), factor)])


def _mmss(ms: float) -> str:
    s = int(round(ms / 1000))
    return f"{s // 60}:{s % 60:02d}"


def _firing(alerts: list[dict], role: str) -> list[dict]:
    seen, out = set(), []
    for a in sorted(alerts, key=lambda a: (a.get("fired_ms", 0), a.get("alert_id", ""))):
        if a.get("status") != "FIRING" or a.get("alert_id") in seen or a.get("role") not in (role, "MIXED", None):
            continue
        seen.add(a.get("alert_id"))
        out.append(a)
    return out


def _panel(ax: Any, role: str, r: dict, labels: list[str], alerts: list[dict], step_ms: int, x_max: float) -> None:
    tl = r.get("timeline") or {}
    base = int(tl.get("step_ms") or DEFAULT_STEP_MS)
    probs = np.asarray(tl.get("probs") or np.zeros((0, len(labels))), dtype=np.float64).reshape(-1, len(labels))
    factor = max(1, step_ms // base)
    probs = _coarsen(probs, factor)
    width = base * factor
    start = float(tl.get("start_ms", 0))
    x = (start + np.arange(len(probs) + 1) * width) / 1000.0
    lower = np.zeros(len(probs) + 1)
    for k, label in enumerate(labels):
        upper = lower + np.append(probs[:, k], probs[-1, k] if len(probs) else 0.0)
        ax.fill_between(x, lower, upper, step="post", color=_color(label, k), linewidth=0, label=label)
        lower = upper
    for i, a in enumerate(_firing(alerts, role)):
        started, fired = a.get("started_ms", a.get("fired_ms", 0)) / 1000.0, a.get("fired_ms", 0) / 1000.0
        ax.axvspan(started, fired, color=_ALERT, alpha=0.18, linewidth=0)
        ax.axvline(fired, color=_ALERT, linewidth=1.6)
        ax.text(fired, 1.02 + 0.1 * (i % 2), f" {a.get('rule_id', '?')} ({a.get('priority', '?')})",
                color=_ALERT, fontsize=8, va="bottom", ha="left", clip_on=False)
    u = r.get("utterance") or {}
    conf = u.get("confidence")
    ax.set_title(f"{role.lower()} · {r.get('chunks', 0)} chunks · whole call: {u.get('top', '–')}"
                 + (f" {conf:.0%}" if isinstance(conf, (int, float)) else ""), loc="left", fontsize=10, pad=16)
    ax.set_xlim(0, max(x_max, 0.2))
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability", fontsize=8)
    ax.tick_params(labelsize=8)
    summary = r.get("summary") or "–"
    if len(summary) > _SUMMARY_CHARS:
        summary = summary[:_SUMMARY_CHARS].rsplit(" → ", 1)[0] + " → …"
    ax.text(0, -0.2, "\n".join(textwrap.wrap(summary, 150)), transform=ax.transAxes, fontsize=8, va="top",
            ha="left", color="#1d2630")


def render_call_png(call: dict, *, step_ms: int = DEFAULT_STEP_MS, dpi: int = 100) -> bytes:
    """The PNG bytes of ``call``'s report. ``step_ms`` (a multiple of the timeline's 200 ms steps) averages
    consecutive steps' probabilities for a coarser picture; segments and summary stay those of history."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if step_ms < DEFAULT_STEP_MS or step_ms % DEFAULT_STEP_MS:
        raise ValueError(f"step_ms must be a positive multiple of {DEFAULT_STEP_MS}, not {step_ms}")
    roles = list((call.get("roles") or {}).items())
    labels = list(call.get("labels") or [])
    alerts = list(call.get("alerts") or [])
    x_max = max([call.get("duration_ms", 0) / 1000.0]
                + [(r.get("timeline", {}).get("start_ms", 0)
                    + len(r.get("timeline", {}).get("probs") or []) * DEFAULT_STEP_MS) / 1000.0 for _, r in roles])
    n = max(1, len(roles))
    fig = Figure(figsize=(12, 1.2 + 2.9 * n), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.suptitle(f"Call {call.get('call_id', '?')} · line {call.get('business_line') or '–'} · agent "
                 f"{call.get('agent') or '–'} · {_mmss(call.get('duration_ms', 0))} "
                 f"({call.get('duration_ms', 0) / 1000:.1f} s)", x=0.01, ha="left", fontsize=12, fontweight="bold")
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    if not roles:
        axes[0].text(0.5, 0.5, "no scores stored", ha="center", va="center", transform=axes[0].transAxes)
        axes[0].set_axis_off()
    for ax, (role, r) in zip(axes, roles):
        _panel(ax, role, r, labels, alerts, step_ms, x_max)
    axes[-1].set_xlabel("call time (s)", fontsize=8)
    if roles and labels:
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="upper right", ncol=len(labels), fontsize=8, frameon=False,
                   bbox_to_anchor=(0.995, 0.995 - 0.25 / (1.2 + 2.9 * n)))
    fig.subplots_adjust(left=0.05, right=0.99, top=1 - 0.85 / (1.2 + 2.9 * n), bottom=0.65 / (1.2 + 2.9 * n),
                        hspace=0.75)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=PNG_METADATA)
    return buf.getvalue()
