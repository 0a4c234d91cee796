"""Field types of the rule language shared by its models (:mod:`emowatch.rules.model`,
:mod:`emowatch.rules.conditions`): emotions, durations, probabilities, roles, identifiers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

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
