"""The conditions of the rule language (a rule's ``when``), as strict models.

Leaves scored on one role's windows: ``emotion``, ``sum``, ``sequence`` (top level only) and ``trend``.
Conversation conditions, from the voice activity of both roles (FrameScores ``speech``): ``silence``,
``talk_ratio``, ``overtalk``. Combinations: ``all``, ``any``, ``not``, ``count`` and ``if`` ...
``not_followed_by``. A leaf may name its own ``role`` (in a combination across roles); a rule with such a
leaf or with a conversation condition is evaluated on the whole call (:mod:`emowatch.rules.conversation`).
Reference: docs/rules.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, TypeAdapter, model_validator

from emowatch.rules.fields import Duration, Emotion, Probability, Role, Strict, _lower

MAX_LOOKBACK_MS = 300_000
"""Longest ``over`` / ``within`` of the conditions that look back (trend, talk_ratio, count, not_followed_by)."""
Lookback = Annotated[Duration, Field(gt=0, le=MAX_LOOKBACK_MS)]


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
    role: Role | None = None

    @property
    def emotions(self) -> list[str]:
        return [self.emotion]


class SumCondition(_Threshold):
    """The sum of several emotions' windowed probabilities above (or below) a threshold."""

    sum: Annotated[list[Emotion], Field(min_length=2)]
    role: Role | None = None

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


class TrendCondition(Strict):
    """An emotion's windowed probability rising (or falling) by at least ``rises`` (``falls``) against the same
    window ``over`` ago, or above the role's own baseline (its mean over the call before the window) by
    ``above_baseline``."""

    trend: Emotion
    rises: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    falls: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    above_baseline: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    over: Lookback | None = None
    role: Role | None = None

    @model_validator(mode="after")
    def _check(self) -> TrendCondition:
        given = [k for k in ("rises", "falls", "above_baseline") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'rises', 'falls' or 'above_baseline'")
        if given[0] == "above_baseline" and self.over is not None:
            raise ValueError("'over' goes with 'rises' or 'falls'; the baseline is the call so far")
        if given[0] != "above_baseline" and self.over is None:
            raise ValueError(f"'{given[0]}' needs 'over' (e.g. over: 10s)")
        return self

    @property
    def emotions(self) -> list[str]:
        return [self.trend]

    @property
    def threshold(self) -> float:
        if self.rises is not None:
            return self.rises
        return -self.falls if self.falls is not None else self.above_baseline  # type: ignore[return-value,operator]


class SilenceCondition(Strict):
    """No speech from ``silence`` (a role, or ``both``) for at least ``min`` after it has spoken in the call;
    with ``after``: only when that silence began within ``within`` of the ``after`` condition (scored on the
    silent role, or on its own ``role``) holding."""

    silence: Annotated[Literal["customer", "agent", "mixed", "both"], BeforeValidator(_lower)] | None = None
    min: Annotated[Duration, Field(gt=0, le=MAX_LOOKBACK_MS)]
    after: Annotated[Any, Field(default=None)] = None
    within: Lookback | None = None

    @model_validator(mode="after")
    def _check(self) -> SilenceCondition:
        if self.silence is None:
            raise ValueError("'silence' names a role or 'both'")
        if (self.after is None) != (self.within is None):
            raise ValueError("'after' and 'within' go together")
        if self.after is not None:
            self.__dict__["after"] = _leaf(self.after, "after")
            if self.silence == "both" and getattr(self.after, "role", None) is None:
                raise ValueError("with 'silence: both', give the 'after' condition its role (e.g. role: customer)")
        return self

    @property
    def emotions(self) -> list[str]:
        return list(self.after.emotions) if self.after is not None else []

    @property
    def threshold(self) -> float:
        return self.min / 1000.0


class TalkRatioCondition(_Threshold):
    """``talk_ratio`` (a role)'s share of all speech over the last ``over`` above (or below) a bound; scored only
    when the window holds at least ``min_speech`` of speech of either role."""

    talk_ratio: Annotated[Literal["customer", "agent"], BeforeValidator(_lower)]
    over: Lookback = 60_000
    min_speech: Annotated[Duration, Field(gt=0)] = 5_000

    @model_validator(mode="after")
    def _fits(self) -> TalkRatioCondition:
        if self.min_speech > self.over:
            raise ValueError("'min_speech' is longer than 'over'")
        return self

    @property
    def emotions(self) -> list[str]:
        return []


class OvertalkCondition(Strict):
    """Both roles speaking at once for at least ``min``, the overlap started by ``overtalk`` (the role that
    began speaking while the other was speaking; ``any``: either). Holds while the overlap lasts; wrap it in
    ``count`` for "interruptions per minute"."""

    overtalk: Annotated[Literal["customer", "agent", "any"], BeforeValidator(_lower)]
    min: Annotated[Duration, Field(gt=0, le=60_000)] = 500

    @property
    def emotions(self) -> list[str]:
        return []

    @property
    def threshold(self) -> float:
        return self.min / 1000.0


class AllCondition(Strict):
    """Every condition holds (each on its own role, if it names one)."""

    all: Annotated[list[Any], Field(min_length=2, max_length=16)]

    @model_validator(mode="after")
    def _children(self) -> AllCondition:
        self.__dict__["all"] = [_nested(c, "all") for c in self.all]
        return self

    @property
    def emotions(self) -> list[str]:
        return _union(self.all)


class AnyCondition(Strict):
    """At least one condition holds."""

    any: Annotated[list[Any], Field(min_length=2, max_length=16)]

    @model_validator(mode="after")
    def _children(self) -> AnyCondition:
        self.__dict__["any"] = [_nested(c, "any") for c in self.any]
        return self

    @property
    def emotions(self) -> list[str]:
        return _union(self.any)


class NotCondition(Strict):
    """The condition does not hold (where it can be scored)."""

    not_: Annotated[Any, Field(alias="not")]

    @model_validator(mode="after")
    def _child(self) -> NotCondition:
        self.__dict__["not_"] = _nested(self.not_, "not")
        return self

    @property
    def emotions(self) -> list[str]:
        return list(self.not_.emotions)


class CountCondition(Strict):
    """At least ``at_least`` episodes of ``count`` (each a start of it holding) within the last ``within``."""

    count: Any
    at_least: Annotated[int, Field(ge=2, le=1000)]
    within: Lookback

    @model_validator(mode="after")
    def _child(self) -> CountCondition:
        self.__dict__["count"] = _nested(self.count, "count")
        return self

    @property
    def emotions(self) -> list[str]:
        return list(self.count.emotions)


class NotFollowedByCondition(Strict):
    """``if`` starts to hold and ``not_followed_by`` does not hold within ``within``: holds from then until
    ``not_followed_by`` holds (e.g. anger not calmed within 20 s)."""

    if_: Annotated[Any, Field(alias="if")]
    not_followed_by: Any
    within: Lookback

    @model_validator(mode="after")
    def _children(self) -> NotFollowedByCondition:
        self.__dict__["if_"] = _nested(self.if_, "if")
        self.__dict__["not_followed_by"] = _nested(self.not_followed_by, "not_followed_by")
        return self

    @property
    def emotions(self) -> list[str]:
        return _union([self.if_, self.not_followed_by])


_KINDS = {"emotion": EmotionCondition, "sum": SumCondition, "sequence": SequenceCondition, "trend": TrendCondition,
          "silence": SilenceCondition, "talk_ratio": TalkRatioCondition, "overtalk": OvertalkCondition,
          "all": AllCondition, "any": AnyCondition, "not": NotCondition, "count": CountCondition,
          "if": NotFollowedByCondition}
_MODELS = tuple(_KINDS.values())
LEAVES = (EmotionCondition, SumCondition, TrendCondition)
"""Conditions scored on one role's windows that may be nested (a sequence may not: it has its own progress)."""
CONVERSATION = (SilenceCondition, TalkRatioCondition, OvertalkCondition)
COMBINATIONS = (AllCondition, AnyCondition, NotCondition, CountCondition, NotFollowedByCondition)
_KEYS = ", ".join(repr(k) for k in _KINDS)


def _condition_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        kinds = [k for k in _KINDS if k in value]
        return _KINDS[kinds[0]].__name__ if len(kinds) == 1 else None
    return type(value).__name__ if isinstance(value, _MODELS) else None


Condition = Annotated[
    Annotated[EmotionCondition, Tag("EmotionCondition")]
    | Annotated[SumCondition, Tag("SumCondition")]
    | Annotated[SequenceCondition, Tag("SequenceCondition")]
    | Annotated[TrendCondition, Tag("TrendCondition")]
    | Annotated[SilenceCondition, Tag("SilenceCondition")]
    | Annotated[TalkRatioCondition, Tag("TalkRatioCondition")]
    | Annotated[OvertalkCondition, Tag("OvertalkCondition")]
    | Annotated[AllCondition, Tag("AllCondition")]
    | Annotated[AnyCondition, Tag("AnyCondition")]
    | Annotated[NotCondition, Tag("NotCondition")]
    | Annotated[CountCondition, Tag("CountCondition")]
    | Annotated[NotFollowedByCondition, Tag("NotFollowedByCondition")],
    Discriminator(_condition_kind, custom_error_type="condition_kind",
                  custom_error_message=f"a condition needs exactly one of the keys {_KEYS}"),
]


def _validate(value: Any) -> Any:
    return _ADAPTER.validate_python(value) if not isinstance(value, _MODELS) else value


def _nested(value: Any, where: str) -> Any:
    cond = _validate(value)
    if isinstance(cond, SequenceCondition):
        raise ValueError(f"a 'sequence' cannot be nested in '{where}' (use it as a rule's whole condition)")
    return cond


def _leaf(value: Any, where: str) -> Any:
    cond = _validate(value)
    if not isinstance(cond, LEAVES):
        raise ValueError(f"'{where}' takes an emotion, sum or trend condition")
    return cond


def _union(children: list[Any]) -> list[str]:
    return list(dict.fromkeys(e for c in children for e in c.emotions))


def walk(cond: Any) -> list[Any]:
    """``cond`` and every condition nested in it, depth first."""
    out = [cond]
    for child in children(cond):
        out += walk(child)
    return out


def children(cond: Any) -> list[Any]:
    """The conditions directly nested in ``cond``."""
    if isinstance(cond, AllCondition):
        return list(cond.all)
    if isinstance(cond, AnyCondition):
        return list(cond.any)
    if isinstance(cond, NotCondition):
        return [cond.not_]
    if isinstance(cond, CountCondition):
        return [cond.count]
    if isinstance(cond, NotFollowedByCondition):
        return [cond.if_, cond.not_followed_by]
    if isinstance(cond, SilenceCondition) and cond.after is not None:
        return [cond.after]
    return []


def needs_call(cond: Any) -> bool:
    """Whether ``cond`` is evaluated on the whole call (a conversation condition, or a leaf naming its role)."""
    return any(isinstance(c, CONVERSATION) or getattr(c, "role", None) is not None for c in walk(cond))


_ADAPTER: TypeAdapter = TypeAdapter(Condition)
