"""Strict pydantic models of the rule language (one YAML file = one :class:`RuleSet`).

Every model forbids unknown keys. Durations are stored as whole milliseconds,
probabilities are checked to lie in [0, 1], emotions must be one of the nine
emotion2vec classes. Rule fields left out inherit from the rule set's ``defaults``
(resolved by the loader, so a loaded :class:`Rule` has no ``None`` left in them).
Cross-field checks (duplicate ids, references) live in :mod:`emowatch.rules.crosscheck`.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, PrivateAttr, model_validator

from emowatch.rules.conditions import (  # noqa: F401 - re-exported: the rule language in one import
    Condition,
    EmotionCondition,
    SequenceCondition,
    SumCondition,
    TrendCondition,
)
from emowatch.rules.durations import parse_duration_ms
from emowatch.rules.fields import (  # noqa: F401 - re-exported
    EMOTIONS,
    PRIORITIES,
    ROLES,
    Action,
    Channel,
    Duration,
    Emotion,
    Identifier,
    NameList,
    Priority,
    Probability,
    Role,
    RoleScope,
    Strict,
    Timestamp,
    _as_list,
)


def _call_span(value: Any) -> Any:
    """``first 30s`` -> (0, 30000); ``30s-2m`` -> (30000, 120000): call offsets, end included."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("first "):
        return (0, parse_duration_ms(text[len("first "):]))
    lo, sep, hi = text.partition("-")
    if not sep:
        raise ValueError(f"invalid span {value!r}: use 'first 30s' or '30s-2m'")
    return (parse_duration_ms(lo), parse_duration_ms(hi))


def _span_order(value: tuple[int, int]) -> tuple[int, int]:
    if value[1] <= value[0]:
        raise ValueError("the span ends before it starts")
    return value


CallSpan = Annotated[tuple[int, int], BeforeValidator(_call_span), AfterValidator(_span_order)]


class ExampleStep(Strict):
    """A span of constant frame probabilities (or a gap with no audio) in an example call."""

    for_: Annotated[Duration, Field(gt=0, alias="for")]
    probs: dict[Emotion, Probability] = Field(default_factory=dict)
    gap: bool = False
    silent: bool = False

    @model_validator(mode="after")
    def _check(self) -> ExampleStep:
        if sum(self.probs.values()) > 1.0 + 1e-6:
            raise ValueError("probs add up to more than 1")
        if self.gap and (self.probs or self.silent):
            raise ValueError("a gap has no probs (and is not 'silent': it has no audio at all)")
        if not self.gap and not self.silent and not self.probs:
            raise ValueError("give probs (e.g. {angry: 0.9}), silent: true or gap: true")
        return self


class ExampleExpect(Strict):
    """One expected alert event: status and call offset (``at``)."""

    status: Annotated[Literal["FIRING", "RESOLVED"], BeforeValidator(lambda v: v.upper()
                                                                       if isinstance(v, str) else v)]
    at: Duration
    rule: Identifier | None = None


class Example(Strict):
    """A synthetic call and the events its rule (or listed rules) must emit, exactly."""

    name: str
    role: Role = "customer"
    business_line: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    chunk: Annotated[Duration, Field(gt=0)] = 1000
    event_time: Timestamp = 1_700_000_000_000
    end_of_call: bool = False
    scores: Annotated[list[ExampleStep], Field(min_length=1)] | None = None
    tracks: dict[Role, Annotated[list[ExampleStep], Field(min_length=1)]] | None = None
    expect: list[ExampleExpect] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_timeline(self) -> Example:
        if (self.scores is None) == (self.tracks is None):
            raise ValueError("give 'scores' (one role's timeline) or 'tracks' (a timeline per role)")
        return self

    def timelines(self) -> dict[str, list[ExampleStep]]:
        """Role -> steps: ``tracks``, or ``scores`` of ``role``."""
        return dict(self.tracks) if self.tracks is not None else {self.role: list(self.scores or [])}


class Rule(Strict):
    """One alerting (or review) rule; ``None`` fields inherit from ``defaults``."""

    id: Identifier
    name: str | None = None
    description: str = ""
    enabled: bool = True
    when: Condition
    for_: Duration | None = Field(default=None, alias="for")
    keep_firing_for: Duration | None = None
    cooldown: Duration | None = None
    window: Annotated[Duration, Field(gt=0, le=60_000)] | None = None
    priority: Priority | None = None
    action: Action | None = None
    channels: list[Channel] | None = None
    role: RoleScope | None = None
    speech_only: bool | None = None
    ignore: Annotated[list[Emotion], BeforeValidator(_as_list), Field(max_length=7)] = Field(default_factory=list)
    during: CallSpan | None = None
    after: Duration | None = None
    business_lines: NameList | None = None
    attributes: dict[str, str | list[str]] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)


class Defaults(Strict):
    """Values for rule fields left out, plus the rule set's evaluation step ``hop``."""

    window: Annotated[Duration, Field(gt=0, le=60_000)] = 1000
    hop: Annotated[Duration, Field(gt=0, le=10_000)] = 200
    for_: Duration = Field(default=0, alias="for")
    keep_firing_for: Duration = 0
    cooldown: Duration = 0
    priority: Priority = "medium"
    action: Action = "alert"
    channels: list[Channel] = Field(default_factory=lambda: ["webhook"])
    role: RoleScope = "any"
    speech_only: bool = True


class Matcher(Strict):
    """Selects alerts by rule id, priority, action and rule labels (all given fields must match)."""

    rules: NameList = Field(default_factory=list)
    priority: Annotated[list[Priority], BeforeValidator(_as_list)] = Field(default_factory=list)
    action: Annotated[list[Action], BeforeValidator(_as_list)] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> Matcher:
        if not (self.rules or self.priority or self.action or self.labels):
            raise ValueError("a matcher needs at least one of: rules, priority, action, labels")
        return self


class InhibitRule(Strict):
    """Alertmanager-style inhibition: firing ``source`` alerts mute ``target`` alerts on the same call."""

    name: str | None = None
    source: Matcher
    target: Matcher
    equal: list[Literal["call_id", "role"]] = Field(default_factory=lambda: ["call_id"])


class Silence(Strict):
    """Mutes matching alerts while ``starts_at <= event time < ends_at`` (event time, not wall-clock)."""

    id: str | None = None
    comment: str = ""
    rules: NameList = Field(default_factory=list)
    call_ids: NameList = Field(default_factory=list)
    business_lines: NameList = Field(default_factory=list)
    roles: Annotated[list[Role], BeforeValidator(_as_list)] = Field(default_factory=list)
    starts_at: Timestamp | None = None
    ends_at: Timestamp

    @model_validator(mode="after")
    def _check(self) -> Silence:
        if not (self.rules or self.call_ids or self.business_lines or self.roles):
            raise ValueError("a silence needs at least one of: rules, call_ids, business_lines, roles")
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("'starts_at' must be before 'ends_at'")
        return self


def canonical_version(data: Any) -> str:
    """First 12 hex of sha256 over the canonical YAML (sorted keys) of the parsed data.

    Comments, key order and formatting do not change the version; any value does.
    """
    canonical = yaml.safe_dump(data, sort_keys=True, allow_unicode=True, default_flow_style=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


_DEFAULTED = ("for_", "keep_firing_for", "cooldown", "window", "priority", "action", "channels", "role", "speech_only")


def resolve_rule(rule: Rule, defaults: Defaults) -> Rule:
    """A copy of ``rule`` with every field left out taken from ``defaults`` (idempotent)."""
    update: dict[str, Any] = {k: getattr(defaults, k) for k in _DEFAULTED if getattr(rule, k) is None}
    if rule.name is None:
        update["name"] = rule.id
    return rule.model_copy(update=update) if update else rule


class RuleSet(Strict):
    """A rule file: rules for one business line (or ``*``), silences and inhibitions.

    ``version`` (content hash), ``source_name`` and ``source_text`` are set by the loader.
    """

    rule_set: Identifier
    business_line: Annotated[str, Field(min_length=1, max_length=128)]
    description: str = ""
    defaults: Defaults = Field(default_factory=Defaults)
    rules: Annotated[list[Rule], Field(min_length=1)]
    silences: list[Silence] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)

    _version: str = PrivateAttr(default="")
    _source_name: str = PrivateAttr(default="")
    _source_text: str = PrivateAttr(default="")
    _positions: dict = PrivateAttr(default_factory=dict)
    _compiled: Any = PrivateAttr(default=None)

    @property
    def version(self) -> str:
        """First 12 hex of sha256 over the canonical YAML of the file's data.

        Set by the loader from the parsed YAML; for a model built in code it is computed
        from its JSON dump instead.
        """
        if not self._version:
            self._version = canonical_version(self.model_dump(mode="json", by_alias=True, exclude_none=True))
        return self._version

    @property
    def source_name(self) -> str:
        return self._source_name

    @property
    def source_text(self) -> str:
        return self._source_text

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (``KeyError`` if none)."""
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def line_of(self, *path: Any) -> int:
        """Source line of a path such as ``('rules', 0, 'examples', 1)`` (0 if unknown)."""
        return self._positions.get(tuple(path), (0, 0))[0]
