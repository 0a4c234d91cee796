"""Combined conditions: compiled into a small tree over *leaves* (columns of the threshold matrix) and
conversation signals, and evaluated on all evaluation points of a message (or of a stretch of the call) at once.

Each node gives ``(values, holds, valid)`` arrays over the points. ``all``/``any``/``not`` are array operations;
``count`` and ``if``/``not_followed_by`` keep a little memory in the rule's state (``n``: node id -> dict) and walk
the points one by one only when something can happen (their input holds somewhere, or they remember something).
No Kafka, no clock: times are call offsets in ms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from emowatch.rules.conditions import (
    AllCondition,
    AnyCondition,
    CountCondition,
    EmotionCondition,
    NotCondition,
    NotFollowedByCondition,
    OvertalkCondition,
    SilenceCondition,
    SumCondition,
    TalkRatioCondition,
    TrendCondition,
    walk,
)
from emowatch.rules.fields import EMOTIONS
from emowatch.rules.windows import BASELINE, WindowKey

COL = {name: i for i, name in enumerate(EMOTIONS)}
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]  # values, holds, valid


class LeafSpec(NamedTuple):
    """One column of the threshold matrix: the sum of ``cols`` on window ``key`` (minus the same on ``key2``: a
    trend) compared with ``threshold`` on the side ``sign``; ``role``: scored on that role's windows (CALL)."""

    key: WindowKey
    key2: WindowKey | None
    cols: tuple[int, ...]
    sign: float
    threshold: float
    role: str | None


@dataclass(frozen=True)
class Leaf:
    i: int


@dataclass(frozen=True)
class Silence:
    role: str            # CUSTOMER / AGENT / MIXED / BOTH
    min_ms: int
    after: Leaf | None
    within_ms: int
    sid: str


@dataclass(frozen=True)
class Talk:
    role: str
    bins: int
    min_speech_ms: int
    sign: float
    threshold: float


@dataclass(frozen=True)
class Overtalk:
    role: str            # CUSTOMER / AGENT / ANY: who started the overlap
    min_ms: int


@dataclass(frozen=True)
class All:
    children: tuple[Any, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    child: Any


@dataclass(frozen=True)
class Count:
    child: Any
    at_least: int
    within_ms: int
    sid: str


@dataclass(frozen=True)
class NotFollowedBy:
    first: Any
    then: Any
    within_ms: int
    sid: str


CONVERSATION_NODES = (Silence, Talk, Overtalk)


def subject_role(cond: Any, rule_role: Any) -> str:
    """The role a conversation rule's alerts carry. A conversation condition alone: its own role (the silent one,
    the one who started the overlap, the one whose share of the talk it is; ``both``/``any``: the rule's one role,
    else MIXED). A combination: the rule's one role, else the first conversation condition's, else the first leaf's
    role, else MIXED."""
    single = str(rule_role[0]).upper() if isinstance(rule_role, list) and len(rule_role) == 1 else None
    if single and not isinstance(cond, (SilenceCondition, OvertalkCondition, TalkRatioCondition)):
        return single  # a combination: the rule says whose alert it is
    for c in walk(cond):
        role = getattr(c, "silence", None) or getattr(c, "overtalk", None) or getattr(c, "talk_ratio", None)
        if role is not None:
            return (single or "MIXED") if role in ("both", "any") else role.upper()
    if single:
        return single
    for c in walk(cond):
        if getattr(c, "role", None):
            return str(c.role).upper()
    return "MIXED"


def conversation_nodes(node: Any) -> list[Any]:
    """The conversation nodes (silence, talk ratio, overtalk) of a compiled tree, depth first."""
    if isinstance(node, CONVERSATION_NODES):
        return [node]
    kids = getattr(node, "children", None) or [getattr(node, a) for a in ("child", "first", "then") if hasattr(node, a)]
    return [x for k in kids for x in conversation_nodes(k)]


def compile_tree(cond: Any, key: WindowKey, hop: int, subject: str) -> tuple[Any, tuple[LeafSpec, ...]]:
    """``cond`` -> (root node, leaves). ``subject`` is set for a CALL rule: leaves without a role of their own are
    scored on it (a silence's ``after`` on the silent role)."""
    leaves: list[LeafSpec] = []
    counter = [0]

    def sid() -> str:
        counter[0] += 1
        return str(counter[0] - 1)

    def leaf(c: Any, default_role: str | None) -> Leaf:
        role = c.role.upper() if getattr(c, "role", None) else default_role
        if isinstance(c, TrendCondition):
            lag = BASELINE if c.above_baseline is not None else int(c.over) // hop  # type: ignore[arg-type]
            spec = LeafSpec(key, WindowKey(key.bins, lag, key.speech, key.ignore), (COL[c.trend],),
                            -1.0 if c.falls is not None else 1.0, float(c.threshold), role)
        else:
            cols = tuple(COL[e] for e in c.emotions)
            spec = LeafSpec(key, None, cols, 1.0 if c.above is not None else -1.0, float(c.threshold), role)
        leaves.append(spec)
        return Leaf(len(leaves) - 1)

    def build(c: Any) -> Any:
        default = subject or None
        if isinstance(c, (EmotionCondition, SumCondition, TrendCondition)):
            return leaf(c, default)
        if isinstance(c, SilenceCondition):
            role = c.silence.upper()  # type: ignore[union-attr]
            after = None
            if c.after is not None:
                after = leaf(c.after, default if role == "BOTH" else role)
            return Silence(role, int(c.min), after, int(c.within or 0), sid())
        if isinstance(c, TalkRatioCondition):
            return Talk(c.talk_ratio.upper(), int(c.over) // hop, int(c.min_speech),
                        1.0 if c.above is not None else -1.0, float(c.threshold))
        if isinstance(c, OvertalkCondition):
            return Overtalk(c.overtalk.upper(), int(c.min))
        if isinstance(c, AllCondition):
            return All(tuple(build(x) for x in c.all))
        if isinstance(c, AnyCondition):
            return AnyOf(tuple(build(x) for x in c.any))
        if isinstance(c, NotCondition):
            return Not(build(c.not_))
        if isinstance(c, CountCondition):
            return Count(build(c.count), c.at_least, int(c.within), sid())
        if isinstance(c, NotFollowedByCondition):
            return NotFollowedBy(build(c.if_), build(c.not_followed_by), int(c.within), sid())
        raise TypeError(f"cannot combine {type(c).__name__}")  # pragma: no cover - the models forbid it

    return build(cond), tuple(leaves)


class Context(NamedTuple):
    """What a tree is evaluated on: the points' call offsets ``(K, n)`` (K calls or messages, n points each), the
    leaves' arrays, the conversation signals (``None`` for a rule scored on one role) and each row's node memory
    (``mems[k]``: the rule's ``n`` of row k, mutated; with ``shared``, the rows whose ``mems[k]`` must not change:
    replaced by a changed copy instead, and no longer shared)."""

    times: np.ndarray
    leaf: Callable[[int], Arrays]
    conv: Callable[[Any], Arrays] | None
    mems: list[dict[str, Any]]
    shared: list[bool] | None = None


def evaluate(node: Any, ctx: Context) -> Arrays:
    """``(values, holds, valid)`` of ``node`` at every point of ``ctx.times``."""
    if isinstance(node, Leaf):
        return ctx.leaf(node.i)
    if isinstance(node, Silence):
        return _silence(node, ctx)
    if isinstance(node, CONVERSATION_NODES):
        return ctx.conv(node)  # type: ignore[misc]
    if isinstance(node, All):
        parts = [evaluate(c, ctx) for c in node.children]
        holds, valid = parts[0][1] & parts[0][2], parts[0][2]
        for _, h, v in parts[1:]:
            holds, valid = holds & h & v, valid & v
        return parts[0][0], holds, valid
    if isinstance(node, AnyOf):  # value: the first holding condition's (else the first condition's)
        parts = [evaluate(c, ctx) for c in node.children]
        holds, valid = parts[0][1] & parts[0][2], parts[0][2]
        values = parts[0][0]
        for v_, h, v in parts[1:]:
            values = np.where(holds, values, np.where(h & v, v_, values))
            holds, valid = holds | (h & v), valid | v
        return values, holds, valid
    if isinstance(node, Not):
        values, h, v = evaluate(node.child, ctx)
        return values, v & ~h, v
    if isinstance(node, Count):
        return _count(node, ctx)
    if isinstance(node, NotFollowedBy):
        return _not_followed_by(node, ctx)
    raise TypeError(f"unknown node {node!r}")  # pragma: no cover


def in_span(times: np.ndarray, scope: tuple[int, int] | None) -> np.ndarray | None:
    """Points inside a rule's ``during``/``after`` span (``None``: no span)."""
    return None if scope is None else (times >= scope[0]) & (times <= scope[1])


def _rows(on: np.ndarray, ctx: Context, sid: str) -> tuple[list[int], list[bool]]:
    """The rows where a stateful node has something to do: its input holds somewhere, or it remembers something;
    and per row whether its input holds somewhere."""
    any_on = on.any(axis=1).tolist()
    return [k for k in range(len(ctx.mems)) if any_on[k] or sid in ctx.mems[k]], any_on


def _own(ctx: Context, k: int) -> dict[str, Any]:
    """Row ``k``'s memory, to change (copied first when it is shared)."""
    if ctx.shared is not None and ctx.shared[k]:
        ctx.mems[k] = dict(ctx.mems[k])
        ctx.shared[k] = False
    return ctx.mems[k]


def _store(ctx: Context, k: int, sid: str, st: dict[str, Any]) -> None:
    if st:
        _own(ctx, k)[sid] = st
    elif sid in ctx.mems[k]:
        _own(ctx, k).pop(sid)


def _count(node: Count, ctx: Context) -> Arrays:
    _, h, v = evaluate(node.child, ctx)
    on = h & v
    values = np.zeros(on.shape)
    rows, any_on = _rows(on, ctx, node.sid)
    last_t = ctx.times[:, -1].tolist() if rows else []
    still: list[int] = []  # no new edge, none too old: the same count at every point, the memory as it is
    counts: list[int] = []
    for k in rows:
        st = ctx.mems[k].get(node.sid) or {}
        edges: list[int] = st.get("e", [])
        prev = bool(st.get("p"))
        if not any_on[k] and not prev and (not edges or edges[0] > last_t[k] - node.within_ms):
            still.append(k)
            counts.append(len(edges))
            continue
        edges = list(edges)
        row = values[k]
        for j, (t, x) in enumerate(zip(ctx.times[k].tolist(), on[k].tolist())):
            if x and not prev:
                edges.append(t)
            prev = x
            while edges and edges[0] <= t - node.within_ms:
                edges.pop(0)
            row[j] = len(edges)
        _store(ctx, k, node.sid, {key: val for key, val in (("e", edges), ("p", 1 if prev else 0)) if val})
    if still:
        values[still] = np.array(counts, dtype=np.float64)[:, None]
    return values, values >= node.at_least, np.ones(on.shape, dtype=bool)


def _not_followed_by(node: NotFollowedBy, ctx: Context) -> Arrays:
    _, ha, va = evaluate(node.first, ctx)
    _, hb, vb = evaluate(node.then, ctx)
    a_on, b_on = ha & va, hb & vb
    values, holds = np.zeros(a_on.shape), np.zeros(a_on.shape, dtype=bool)
    for k in _rows(a_on, ctx, node.sid)[0]:
        st = dict(ctx.mems[k].get(node.sid) or {})
        for j, (t, a, b) in enumerate(zip(ctx.times[k].tolist(), a_on[k].tolist(), b_on[k].tolist())):
            if "a" in st:
                if b:  # followed after all: the episode is over
                    st.pop("a")
                    st.pop("h", None)
                elif st.get("h") or t - st["a"] >= node.within_ms:
                    st["h"] = 1
                    holds[k, j], values[k, j] = True, (t - st["a"]) / 1000.0
            if "a" not in st and a and not st.get("p") and not b:
                st["a"] = t
            st["p"] = 1 if a else 0
        _store(ctx, k, node.sid, {key: val for key, val in st.items() if val or key == "a"})
    return values, holds, np.ones(a_on.shape, dtype=bool)


def _silence(node: Silence, ctx: Context) -> Arrays:
    """The silent time from the conversation signals, and (with ``after``) when the after-condition last held."""
    values, holds, valid = ctx.conv(node)  # type: ignore[misc]
    if node.after is None:
        return values, holds, valid
    _, ha, va = ctx.leaf(node.after.i)
    a_on = ha & va
    out = np.zeros(holds.shape, dtype=bool)
    rows, any_on = _rows(a_on, ctx, node.sid)
    quiet: list[int] = []  # only remembered: the same for all their points, column-wise
    for k in rows:
        if not any_on[k]:
            if (ctx.mems[k][node.sid] or {}).get("a") is None:
                _own(ctx, k).pop(node.sid)  # (nothing to remember)
            else:
                quiet.append(k)
    if quiet:
        last = np.full(len(out), np.nan)
        last[quiet] = [ctx.mems[k][node.sid]["a"] for k in quiet]
        out = holds & (ctx.times - values * 1000.0 - last[:, None] <= node.within_ms)  # (nan: not remembered)
        gone = ((ctx.times[:, -1] - last > node.within_ms + node.min_ms) & ~out[:, -1]).tolist()
        for k in quiet:
            if gone[k]:  # too long ago to matter again: a silence it could start has already reached min
                _own(ctx, k).pop(node.sid)
    for k in rows:
        if not any_on[k]:
            continue
        st = ctx.mems[k].get(node.sid)
        last = None if not st else st.get("a")
        times = ctx.times[k].tolist()
        for j, (t, a, silent, h) in enumerate(zip(times, a_on[k].tolist(), values[k].tolist(), holds[k].tolist())):
            if a:
                last = t
            if h and last is not None:
                out[k, j] = t - silent * 1000.0 - last <= node.within_ms
        if last is not None and times[-1] - last > node.within_ms + node.min_ms and not out[k, -1]:
            last = None  # too long ago to matter again: a silence it could start has already reached min
        _store(ctx, k, node.sid, {} if last is None else {"a": last})
    return values, out, valid
