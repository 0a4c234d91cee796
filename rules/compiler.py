"""Compile a validated :class:`RuleSet` into arrays and lookup tables for :func:`step`.

The compiled form is an in-memory cache (not JSON); the per-call state stays JSON.
It is cached on the RuleSet instance, so ``compile_ruleset(rs)`` is cheap after the first call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from emowatch.rules.conditions import EmotionCondition, SequenceCondition, SumCondition, TrendCondition, needs_call
from emowatch.rules.model import EMOTIONS, Matcher, Rule, RuleSet, Silence, resolve_rule
from emowatch.rules.tree import COL, LeafSpec, Talk, compile_tree, conversation_nodes, subject_role
from emowatch.rules.windows import BASELINE, WindowKey, layout

_COL = COL
THRESHOLD, SEQUENCE, COMPOUND, CALL = 0, 1, 2, 3
"""Rule kinds: one emotion or sum (a column of the threshold matrix), a sequence, a combination scored on each
role's windows (:mod:`emowatch.rules.tree`), a conversation rule scored on the whole call
(:mod:`emowatch.rules.conversation`)."""


@dataclass(frozen=True)
class CompiledRule:
    """Everything :func:`step` needs about one enabled rule."""

    id: str
    order: int
    kind: int                      # THRESHOLD (emotion / sum) or SEQUENCE
    window_bins: int               # window length in hops
    sign: float                    # +1 for above, -1 for below
    threshold: float
    cols: tuple[int, ...]          # summed classes (THRESHOLD) or sequence steps (SEQUENCE)
    within_ms: int
    last_col: int                  # SEQUENCE: class of the last step
    for_ms: int
    keep_ms: int
    cooldown_ms: int
    roles: frozenset[str] | None   # upper-case roles, None = any
    business_lines: frozenset[str] | None
    attributes: tuple[tuple[str, frozenset[str]], ...]
    priority: str                  # LOW..CRITICAL
    action: str                    # ALERT / REVIEW
    emotions: tuple[str, ...]
    channels: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    inhibited_by: tuple[tuple[str, bool], ...] = ()   # (source rule id, same role required)
    step_mask: np.ndarray = field(default_factory=lambda: np.zeros(len(EMOTIONS), dtype=bool))  # classes in cols
    speech: bool = True                               # windows over speech frames only
    ignore: tuple[int, ...] = ()                      # classes left out (renormalised)
    tree: Any = None                                  # COMPOUND / CALL: the condition (emowatch.rules.tree)
    leaves: tuple[LeafSpec, ...] = ()                 # COMPOUND / CALL: the tree's leaves
    scope: tuple[int, int] | None = None              # call offsets (ms, both included) where it may hold
    subject: str = ""                                 # CALL: the alerts' role

    lag: int = 0                                      # THRESHOLD trend: the past window's lag (bins) or BASELINE

    @property
    def key(self) -> WindowKey:
        """The window a THRESHOLD or SEQUENCE rule is scored on."""
        return WindowKey(self.window_bins, 0, self.speech, self.ignore)

    @property
    def key2(self) -> WindowKey | None:
        """A THRESHOLD trend's past window (or baseline), subtracted."""
        return WindowKey(self.window_bins, self.lag, self.speech, self.ignore) if self.lag else None

    def in_scope(self, role: str, business_line: str, attributes: dict[str, str]) -> bool:
        """Role, business-line and call-attribute filters."""
        if self.roles is not None and role not in self.roles:
            return False
        if self.business_lines is not None and business_line not in self.business_lines:
            return False
        return all(attributes.get(key) in values for key, values in self.attributes)


@dataclass(frozen=True)
class CompiledSilence:
    rules: frozenset[str] | None
    call_ids: frozenset[str] | None
    business_lines: frozenset[str] | None
    roles: frozenset[str] | None
    starts_at: int
    ends_at: int

    def matches(self, rule_id: str, call_id: str, business_line: str, role: str, event_ms: int) -> bool:
        """Whether this silence mutes the alert at event time ``event_ms`` (epoch ms)."""
        return (self.starts_at <= event_ms < self.ends_at
                and (self.rules is None or rule_id in self.rules)
                and (self.call_ids is None or call_id in self.call_ids)
                and (self.business_lines is None or business_line in self.business_lines)
                and (self.roles is None or role in self.roles))


@dataclass
class CompiledRuleSet:
    """Rules with their windows, and one stacked class-indicator matrix for all threshold rules.

    ``advance`` scores every window at once (``probs`` of shape ``(n_windows, E, 9)``); laid
    out as ``(E, n_windows * 9)`` one product with ``threshold_matrix`` gives every threshold
    rule's condition value at every point."""

    rule_set: str
    business_line: str
    version: str
    hop_ms: int
    rules: list[CompiledRule]
    by_id: dict[str, CompiledRule]
    windows: tuple[WindowKey, ...]                  # distinct windows
    max_bins: int
    threshold_rules: list[CompiledRule]             # the first R matrix columns
    threshold_windows: np.ndarray                   # (C,) index into windows, per column (its validity)
    threshold_matrix: np.ndarray                    # (n_windows * 9, C) class indicator (+1; -1: trend's past)
    thresholds: np.ndarray                          # (C,)
    signs: np.ndarray                               # (C,) +1 (above) / -1 (below)
    sequence_rules: list[tuple[CompiledRule, int]]  # (rule, index into windows)
    silences: list[CompiledSilence] = field(default_factory=list)
    threshold_windows2: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))  # (C,) 2nd window
    compound_rules: list[CompiledRule] = field(default_factory=list)
    call_rules: list[CompiledRule] = field(default_factory=list)
    leaf_cols: dict[str, np.ndarray] = field(default_factory=dict)   # COMPOUND/CALL rule id -> its leaves' columns
    role_leaf_cols: dict[str, np.ndarray] = field(default_factory=dict)  # role -> columns CALL rules read there
    shared_exact: bool = True                       # every column sums at most two terms (see batched.py)
    lay: Any = None                                 # windows.Layout of ``windows``
    two_windows: bool = False                       # some column reads two windows (a trend)
    subjects: dict[str, str] = field(default_factory=dict)  # CALL rule id -> the role its alerts carry
    conversation_nodes: list[Any] = field(default_factory=list)  # the CALL rules' signals, once each
    longest_talk: int = 0                           # the longest talk_ratio window (bins)
    _scopes: dict[tuple[Any, ...], frozenset[str]] = field(default_factory=dict, init=False, compare=False, repr=False)

    def scoped(self, role: str, business_line: str, attributes: dict[str, str]) -> frozenset[str]:
        """The ids of the rules whose role, business-line and attribute filters take a message
        (``CompiledRule.in_scope`` of every rule, cached per distinct input)."""
        keys = self._attribute_keys
        key = (role, business_line, *(attributes.get(k) for k in keys)) if keys else (role, business_line)
        hit = self._scopes.get(key)  # (an inlined form of this lookup: engine._run_points)
        if hit is None:
            hit = frozenset(r.id for r in self.rules if r.in_scope(role, business_line, attributes))
            if len(self._scopes) < 4096:
                self._scopes[key] = hit
        return hit

    @cached_property
    def threshold_index(self) -> dict[str, int]:
        """A threshold rule's id -> its column."""
        return {r.id: j for j, r in enumerate(self.threshold_rules)}

    @cached_property
    def sequence_ids(self) -> frozenset[str]:
        return frozenset(r.id for r, _ in self.sequence_rules)

    @cached_property
    def _attribute_keys(self) -> tuple[str, ...]:
        return tuple(sorted({k for r in self.rules for k, _ in r.attributes}))

    def silenced(self, rule_id: str, call_id: str, business_line: str, role: str, event_ms: int) -> bool:
        return any(s.matches(rule_id, call_id, business_line, role, event_ms) for s in self.silences)


def compile_ruleset(ruleset: RuleSet | CompiledRuleSet) -> CompiledRuleSet:
    """Compile (or return the cached compilation of) a loaded rule set."""
    if isinstance(ruleset, CompiledRuleSet):
        return ruleset
    cached = ruleset._compiled
    if cached is None:
        cached = _compile(ruleset)
        ruleset._compiled = cached
    return cached


def _compile(rs: RuleSet) -> CompiledRuleSet:
    hop = rs.defaults.hop
    enabled = [resolve_rule(r, rs.defaults) for r in rs.rules if r.enabled]  # no-op after the loader
    inhibited: dict[str, list[tuple[str, bool]]] = {r.id: [] for r in enabled}
    for inh in rs.inhibit:
        sources = [r.id for r in enabled if _matches(inh.source, r)]
        same_role = "role" in inh.equal
        for target in enabled:
            if _matches(inh.target, target):
                inhibited[target.id].extend((s, same_role) for s in sources)
    rules = [_compile_rule(r, i, hop, tuple(dict.fromkeys(inhibited[r.id]))) for i, r in enumerate(enabled)]
    return assemble(rs.rule_set, rs.business_line, rs.version, hop, rules,
                    [_compile_silence(s) for s in rs.silences])


def assemble(rule_set: str, business_line: str, version: str, hop: int, rules: list[CompiledRule],
             silences: list[CompiledSilence]) -> CompiledRuleSet:
    """A compiled rule set from compiled rules (their windows, the threshold matrix); also used to add
    variants of a rule (``streams/replay/sweep.py``)."""
    thr = [r for r in rules if r.kind == THRESHOLD]
    columns = [LeafSpec(r.key, r.key2, r.cols, r.sign, r.threshold, None) for r in thr]
    leaf_cols: dict[str, np.ndarray] = {}
    role_cols: dict[str, list[int]] = {}
    for r in rules:
        if r.kind in (COMPOUND, CALL):
            leaf_cols[r.id] = np.arange(len(columns), len(columns) + len(r.leaves), dtype=np.intp)
            for j, leaf in enumerate(r.leaves):
                if r.kind == CALL:
                    role_cols.setdefault(leaf.role or r.subject, []).append(len(columns) + j)
            columns += r.leaves
    keys = {r.key for r in rules if r.kind in (THRESHOLD, SEQUENCE)}
    keys |= {c.key for c in columns} | {c.key2 for c in columns if c.key2 is not None}
    windows = tuple(sorted(keys))
    nodes = list(dict.fromkeys(x for r in rules if r.kind == CALL for x in conversation_nodes(r.tree)))
    index = {w: i for i, w in enumerate(windows)}
    n = len(EMOTIONS)
    matrix = np.zeros((len(windows) * n, len(columns)), dtype=np.float64)
    for j, c in enumerate(columns):
        matrix[[index[c.key] * n + k for k in c.cols], j] = 1.0
        if c.key2 is not None:
            matrix[[index[c.key2] * n + k for k in c.cols], j] = -1.0
    return CompiledRuleSet(
        rule_set=rule_set, business_line=business_line, version=version, hop_ms=hop,
        rules=rules, by_id={r.id: r for r in rules}, windows=windows,
        max_bins=max((w.span for w in windows), default=1),
        threshold_rules=thr, threshold_windows=np.array([index[c.key] for c in columns], dtype=np.intp),
        threshold_windows2=np.array([index[c.key2 or c.key] for c in columns], dtype=np.intp),
        threshold_matrix=matrix, thresholds=np.array([c.threshold for c in columns]),
        signs=np.array([c.sign for c in columns]),
        sequence_rules=[(r, index[r.key]) for r in rules if r.kind == SEQUENCE],
        silences=list(silences), compound_rules=[r for r in rules if r.kind == COMPOUND],
        call_rules=[r for r in rules if r.kind == CALL], leaf_cols=leaf_cols,
        role_leaf_cols={role: np.array(cols, dtype=np.intp) for role, cols in role_cols.items()},
        shared_exact=all(len(c.cols) * (2 if c.key2 is not None else 1) <= 2 for c in columns),
        lay=layout(windows), two_windows=any(c.key2 is not None for c in columns),
        subjects={r.id: r.subject for r in rules if r.kind == CALL},
        conversation_nodes=nodes, longest_talk=max((x.bins for x in nodes if isinstance(x, Talk)), default=0))


def _matches(m: Matcher, rule: Rule) -> bool:
    return ((not m.rules or rule.id in m.rules)
            and (not m.priority or rule.priority in m.priority)
            and (not m.action or rule.action in m.action)
            and all(rule.labels.get(k) == v for k, v in m.labels.items()))


def _opt(values: list[str], upper: bool = False) -> frozenset[str] | None:
    return frozenset(v.upper() if upper else v for v in values) if values else None


def _compile_rule(r: Rule, order: int, hop: int, inhibited_by: tuple[tuple[str, bool], ...]) -> CompiledRule:
    cond: Any = r.when
    is_seq = isinstance(cond, SequenceCondition)
    emotions = tuple(cond.emotions)
    cols = tuple(_COL[e] for e in emotions)
    attrs = tuple((k, frozenset([v] if isinstance(v, str) else v)) for k, v in sorted(r.attributes.items()))
    labels = dict(r.labels)
    labels.setdefault("rule_name", r.name or r.id)
    window_bins = int(r.window) // hop  # type: ignore[arg-type]
    ignore = tuple(sorted(_COL[e] for e in r.ignore))
    speech = bool(r.speech_only)
    simple = isinstance(cond, (EmotionCondition, SumCondition, TrendCondition)) and getattr(cond, "role", None) is None
    kind, tree, leaves, subject = (SEQUENCE if is_seq else THRESHOLD), None, (), ""
    lag, sign = 0, 1.0 if is_seq or getattr(cond, "above", None) is not None else -1.0
    if isinstance(cond, TrendCondition) and simple:  # one column: this window minus a past one (or the baseline)
        lag = BASELINE if cond.above_baseline is not None else int(cond.over) // hop  # type: ignore[arg-type]
        sign = -1.0 if cond.falls is not None else 1.0
    if not is_seq and not simple:
        call = needs_call(cond)
        subject = subject_role(cond, r.role) if call else ""
        tree, leaves = compile_tree(cond, WindowKey(window_bins, 0, speech, ignore), hop, subject)
        kind = CALL if call else COMPOUND
    return CompiledRule(
        id=r.id, order=order, kind=kind, window_bins=window_bins, lag=lag,
        sign=sign if kind in (THRESHOLD, SEQUENCE) else 1.0,
        threshold=float(getattr(cond, "threshold", 0.0)), cols=cols,
        speech=speech, ignore=ignore, tree=tree, leaves=leaves, subject=subject,
        scope=_scope(r),
        within_ms=cond.within if is_seq else 0, last_col=cols[-1] if cols else 0,
        for_ms=int(r.for_), keep_ms=int(r.keep_firing_for), cooldown_ms=int(r.cooldown),  # type: ignore[arg-type]
        roles=None if r.role == "any" or kind == CALL else _opt(list(r.role), upper=True),  # type: ignore[arg-type]
        business_lines=_opt(list(r.business_lines or [])),
        attributes=attrs, priority=str(r.priority).upper(), action=str(r.action).upper(),
        emotions=emotions, channels=tuple(r.channels or ()), labels=tuple(sorted(labels.items())),
        inhibited_by=inhibited_by, step_mask=np.isin(np.arange(len(EMOTIONS)), cols))


def _scope(r: Rule) -> tuple[int, int] | None:
    """``during`` / ``after`` as one span of call offsets (ms, both ends included)."""
    lo, hi = (r.during if r.during is not None else (0, 1 << 62))
    if r.after is not None:
        lo = max(lo, int(r.after))
    return None if (lo, hi) == (0, 1 << 62) else (lo, hi)


def _compile_silence(s: Silence) -> CompiledSilence:
    return CompiledSilence(rules=_opt(s.rules), call_ids=_opt(s.call_ids), business_lines=_opt(s.business_lines),
                           roles=_opt(list(s.roles), upper=True), starts_at=s.starts_at or 0, ends_at=s.ends_at)


