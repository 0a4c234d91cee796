"""Alertmanager ``time_intervals``: named sets of times when a route is muted (or active).

A named interval holds a list of specs; it is active when any spec matches. A spec matches
when every field it gives matches (a field left out matches always)::

    times:         [{start_time: '18:00', end_time: '24:00'}]  # minutes of the day, start <= t < end
    weekdays:      ['monday:friday', 'sunday']                  # inclusive ranges; sunday starts the week
    days_of_month: ['1:5', '-1']                                 # negative counts from the month's end
    months:        ['january:march', '12']                       # names or 1-12
    years:         ['2024:2026']
    location:      Asia/Shanghai                                 # IANA zone for all of the above (UTC)

As in Alertmanager, a range must not wrap (``saturday:sunday`` is an error; write both days).
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

__all__ = ["TimeInterval", "TimeIntervals", "TimeRange", "TimeSpec"]

WEEKDAYS = {name: i for i, name in enumerate(
    ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"))}
MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_name) if name}
_HHMM = re.compile(r"^(\d{2}):(\d{2})$")

Range = tuple[int, int]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _minutes(value: Any) -> int:
    found = _HHMM.match(value) if isinstance(value, str) else None
    if not found:
        raise ValueError(f"invalid time {value!r}: use HH:MM, e.g. '18:00' (00:00 to 24:00)")
    hours, minutes = int(found.group(1)), int(found.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"invalid time {value!r}: use HH:MM, e.g. '18:00' (00:00 to 24:00)")
    return hours * 60 + minutes


class TimeRange(_Strict):
    """``start_time`` (inclusive) to ``end_time`` (exclusive), as minutes of the day."""

    start_time: Annotated[int, BeforeValidator(_minutes)]
    end_time: Annotated[int, BeforeValidator(_minutes)]

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_time >= self.end_time:
            raise ValueError("start_time must be before end_time (a range cannot cross midnight: split it)")
        return self


def _ranges(parse_one: Any, what: str) -> Any:
    def convert(values: Any) -> list[Range]:
        if not isinstance(values, list):
            raise ValueError(f"{what} must be a list")
        out = []
        for item in values:
            text = str(item).strip().lower() if isinstance(item, (str, int)) and not isinstance(item, bool) else None
            if text is None:
                raise ValueError(f"invalid {what} entry {item!r}")
            parts = text.split(":")
            if len(parts) > 2:
                raise ValueError(f"invalid {what} range {item!r}: use 'start:end'")
            begin, end = parse_one(parts[0]), parse_one(parts[-1])
            _check_order(begin, end, item, what)
            out.append((begin, end))
        return out
    return BeforeValidator(convert)


def _check_order(begin: int, end: int, item: Any, what: str) -> None:
    if what == "days_of_month" and (begin < 0) != (end < 0):
        return  # '1:-1' (the whole month) is fine; resolved against the month's length
    if begin > end:
        raise ValueError(f"invalid {what} range {item!r}: start is after end (ranges do not wrap)")


def _named(table: dict[str, int], low: int, high: int, what: str) -> Any:
    def parse(text: str) -> int:
        if text in table:
            return table[text]
        if text.lstrip("-").isdigit() and low <= int(text) <= high:
            return int(text)
        raise ValueError(f"invalid {what} {text!r}")
    return parse


def _day(text: str) -> int:
    if text.lstrip("-").isdigit() and 1 <= abs(int(text)) <= 31:
        return int(text)
    raise ValueError(f"invalid day of month {text!r}: 1 to 31, or -31 to -1 counting from the end")


class TimeSpec(_Strict):
    """One entry of a named interval (all given fields must match)."""

    times: list[TimeRange] = Field(default_factory=list)
    weekdays: Annotated[list[Range], _ranges(_named(WEEKDAYS, 1, 0, "weekday"), "weekdays")] = []
    days_of_month: Annotated[list[Range], _ranges(_day, "days_of_month")] = []
    months: Annotated[list[Range], _ranges(_named(MONTHS, 1, 12, "month"), "months")] = []
    years: Annotated[list[Range], _ranges(_named({}, 1, 9999, "year"), "years")] = []
    location: str = "UTC"

    @field_validator("location")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}: use an IANA name such as 'Asia/Shanghai' or 'UTC'") \
                from None
        return value

    def contains(self, moment_utc: datetime) -> bool:
        """Whether the UTC instant falls in this spec (evaluated in ``location``)."""
        t = moment_utc.astimezone(ZoneInfo(self.location))
        if self.times and not any(r.start_time <= t.hour * 60 + t.minute < r.end_time for r in self.times):
            return False
        weekday = (t.weekday() + 1) % 7  # Python: monday=0; here sunday=0 as in Alertmanager
        if self.weekdays and not _in(weekday, self.weekdays):
            return False
        if self.days_of_month and not self._day_matches(t):
            return False
        if self.months and not _in(t.month, self.months):
            return False
        return not self.years or _in(t.year, self.years)

    def _day_matches(self, t: datetime) -> bool:
        days = calendar.monthrange(t.year, t.month)[1]
        for begin, end in self.days_of_month:
            begin = days + begin + 1 if begin < 0 else begin
            end = days + end + 1 if end < 0 else end
            if begin > days:
                continue  # e.g. day 31 in a 30-day month
            if begin <= t.day <= min(end, days):
                return True
        return False


def _in(value: int, ranges: Iterable[Range]) -> bool:
    return any(begin <= value <= end for begin, end in ranges)


class TimeInterval(_Strict):
    """A named interval: active when any of its specs matches."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$", max_length=128)]
    time_intervals: Annotated[list[TimeSpec], Field(min_length=1)]

    def contains(self, moment_utc: datetime) -> bool:
        return any(spec.contains(moment_utc) for spec in self.time_intervals)


class TimeIntervals:
    """The configuration's named intervals, asked by name with the clock passed in (epoch ms)."""

    def __init__(self, intervals: Sequence[TimeInterval]) -> None:
        self._by_name = {i.name: i for i in intervals}

    def names(self) -> list[str]:
        return list(self._by_name)

    def active(self, now_ms: int, names: Iterable[str]) -> str | None:
        """The first of ``names`` that is active at ``now_ms``, else None (unknown names: KeyError)."""
        moment = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        for name in names:
            if self._by_name[name].contains(moment):
                return name
        return None

    def is_muted(self, now_ms: int, names: Iterable[str]) -> bool:
        """Whether any of the (mute) intervals ``names`` is active at ``now_ms``."""
        return self.active(now_ms, names) is not None
