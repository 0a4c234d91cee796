"""Strict pydantic models of the rule language (one YAML file = one :class:`RuleSet`).

Every model forbids unknown keys. Durations are stored as whole milliseconds,
probabilities are checked to lie in [0, 1], emotions must be one of the nine
emotion2vec classes. Rule fields left out inherit from the rule set's ``defaults``
(resolved by the loader, so a loaded :class:`Rule` has no ``None`` left in them).
Cross-field checks (duplicate ids, references) live in :mod:`emowatch.rules.crosscheck`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    model_validator,
)

from emowatch.rules.durations import parse_duration_ms
from emowatch.topics.model_io import EMOTIONS  # the nine classes in model order (the logits' column order)

PRIORITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
ROLES: tuple[str, ...] = ("customer", "agent", "mixed")


def _emotion(value: str) -> str:
    if value not in EMOTIONS:
        raise ValueError(f"unknown emotion {value!r}; expected one of: {', '.join(EMOTIONS)}")
    return value


def _timestamp_ms(value: Any) -> int:
    """Epoch milliseconds from an int, a YAML timestamp or an ISO-8601 string (naive = UTC)."""
    if isinstance(value, bool):
        raise ValueError("expected epoch milliseconds or an ISO-8601 timestamp")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("timestamp must be >= 0 (epoch milliseconds)")
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"invalid timestamp {value!r}; use epoch ms or ISO-8601, "
                             "e.g. 2024-01-04T22:30:00Z") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(round(value.timestamp() * 1000))
    raise ValueError("expected epoch milliseconds or an ISO-8601 timestamp")


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Emotion = Annotated[str, AfterValidator(_emotion)]
Duration = Annotated[int, BeforeValidator(parse_duration_ms)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Timestamp = Annotated[int, BeforeValidator(_timestamp_ms)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]
Channel = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.:-]*$", max_length=64)]
Priority = Annotated[Literal["low", "medium", "high", "critical"], BeforeValidator(_lower)]
Action = Annotated[Literal["alert", "review"], BeforeValidator(_lower)]
Role = Annotated[Literal["customer", "agent", "mixed"], BeforeValidator(_lower)]


def _role_scope(value: Any) -> Any:
    value = _lower(value)
    return value if value == "any" else _as_list(value)


RoleScope = Annotated[Literal["any"] | list[Role], BeforeValidator(_role_scope)]
NameList = Annotated[list[str], BeforeValidator(_as_list)]


class Strict(BaseModel):
    """Base: unknown keys are errors; instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class _Threshold(Strict):
    above: Probability | None = None
    below: Probability | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> _Threshold:
        if (self.above is None) == (self.below is None):
            raise ValueError("give exactly one of 'above' or 'below'")
        return self

    @property
    def threshold(self) -> float:
        """The bound, whichever side it is on."""
        return self.above if self.above is not None else self.below  # type: ignore[return-value]


class EmotionCondition(_Threshold):
    """One emotion's windowed probability above (or below) a threshold."""

    emotion: Emotion

    @property
    def emotions(self) -> list[str]:
        return [self.emotion]


class SumCondition(_Threshold):
    """The sum of several emotions' windowed probabilities above (or below) a threshold."""

    sum: Annotated[list[Emotion], Field(min_length=2)]

    @model_validator(mode="after")
    def _unique(self) -> SumCondition:
        if len(set(self.sum)) != len(self.sum):
            raise ValueError("'sum' lists an emotion twice")
        return self

    @property
    def emotions(self) -> list[str]:
        return list(self.sum)


class SequenceCondition(Strict):
    """The dominant emotion passes through ``sequence`` in order within ``within``.

    An evaluation point counts as a step when the window's top class is the step's
    emotion with probability >= ``min_prob``; other emotions may occur in between.
    The condition then holds while the last step's emotion stays dominant.
    """

    sequence: Annotated[list[Emotion], Field(min_length=2, max_length=8)]
    within: Annotated[Duration, Field(gt=0, le=600_000)]
    min_prob: Probability = 0.5

    @model_validator(mode="after")
    def _no_repeat(self) -> SequenceCondition:
        if any(a == b for a, b in zip(self.sequence, self.sequence[1:])):
            raise ValueError("'sequence' repeats an emotion in consecutive steps")
        return self

    @property
    def emotions(self) -> list[str]:
        return list(self.sequence)

    @property
    def threshold(self) -> float:
        return self.min_prob


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [k for k in ("emotion", "sum", "sequence") if k in value]
        return _TAGS[kinds[0]] if len(kinds) == 1 else None
    return type(value).__name__ if isinstance(value, (EmotionCondition, SumCondition, SequenceCondition)) else None


_TAGS = {"emotion": "EmotionCondition", "sum": "SumCondition", "sequence": "SequenceCondition"}


Condition = Annotated[
    Annotated[EmotionCondition, Tag("EmotionCondition")]
    | Annotated[SumCondition, Tag("SumCondition")]
    | Annotated[SequenceCondition, Tag("SequenceCondition")],
    Discriminator(_condition_kind, custom_error_type="condition_kind",
                  custom_error_message="a condition needs exactly one of the keys 'emotion', 'sum', 'sequence'"),
]


class ExampleStep(Strict):
    """A span of constant frame probabilities (or a gap with no audio) in an example call."""

    for_: Annotated[Duration, Field(gt=0, alias="for")]
    probs: dict[Emotion, Probability] = Field(default_factory=dict)
    gap: bool = False

    @model_validator(mode="after")
    def _check(self) -> ExampleStep:
        if sum(self.probs.values()) > 1.0 + 1e-6:
            raise ValueError("probs add up to more than 1")
        if self.gap and self.probs:
            raise ValueError("a gap has no probs")
        if not self.gap and not self.probs:
            raise ValueError("give probs (e.g. {angry: 0.9}) or gap: true")
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
    scores: Annotated[list[ExampleStep], Field(min_length=1)]
    expect: list[ExampleExpect] = Field(default_factory=list)


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


_DEFAULTED = ("for_", "keep_firing_for", "cooldown", "window", "priority", "action", "channels", "role")


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
