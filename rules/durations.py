"""Durations in the rule language: ``500ms``, ``2s``, ``1.5s``, ``1m``, ``1m30s``, ``1h`` (or ``0``)."""

from __future__ import annotations

import re

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")


def parse_duration_ms(value: object) -> int:
    """Parse a duration into whole milliseconds.

    Accepts strings made of ``<number><unit>`` parts (units ms, s, m, h; Prometheus
    style, e.g. ``1m30s``) and the bare number ``0``. Raises ``ValueError`` otherwise:
    a bare number other than 0 is ambiguous (seconds? milliseconds?) and is rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use e.g. '500ms', '2s', '1m'")
    if isinstance(value, (int, float)) and value == 0:
        return 0
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: write it with a unit, e.g. '500ms', '2s', '1m'")
    text = value.strip()
    if text == "0":
        return 0
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {value!r}: use e.g. '500ms', '2s', '1.5s', '1m30s'")
    total = 0.0
    for number, unit in _PART.findall(text):
        total += float(number) * _UNIT_MS[unit]
    if abs(total - round(total)) > 1e-6:
        raise ValueError(f"invalid duration {value!r}: not a whole number of milliseconds")
    return int(round(total))


def format_duration_ms(ms: int) -> str:
    """Inverse of :func:`parse_duration_ms` for display (``2000`` -> ``2s``)."""
    if ms == 0:
        return "0s"
    for unit in ("h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"
