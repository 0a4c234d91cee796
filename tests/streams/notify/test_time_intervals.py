"""Alertmanager time intervals: times, weekdays, days of month (negative too), months, years, location."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from emowatch.streams.notify.time_intervals import TimeInterval, TimeIntervals, TimeSpec


def ms(*args, tz=UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def intervals(**named):
    return TimeIntervals([TimeInterval.model_validate({"name": n, "time_intervals": specs})
                          for n, specs in named.items()])


def test_times_are_start_inclusive_end_exclusive_and_24_00_is_midnight():
    ti = intervals(evening=[{"times": [{"start_time": "18:00", "end_time": "24:00"}]}])
    assert not ti.is_muted(ms(2024, 5, 6, 17, 59), ["evening"])
    assert ti.is_muted(ms(2024, 5, 6, 18, 0), ["evening"])
    assert ti.is_muted(ms(2024, 5, 6, 23, 59, 59), ["evening"])
    assert not ti.is_muted(ms(2024, 5, 7, 0, 0), ["evening"])


def test_weekdays_ranges_and_location():
    ti = intervals(weekend=[{"weekdays": ["saturday", "sunday"], "location": "Asia/Shanghai"}],
                   workdays=[{"weekdays": ["monday:friday"]}])
    # 2024-05-04 is a Saturday; 2024-05-03 20:00 UTC is already Saturday 04:00 in Shanghai
    assert ti.is_muted(ms(2024, 5, 3, 20, 0), ["weekend"])
    assert not ti.is_muted(ms(2024, 5, 3, 15, 0), ["weekend"])
    assert ti.is_muted(ms(2024, 5, 3, 15, 0), ["workdays"])
    assert not ti.is_muted(ms(2024, 5, 5, 12, 0), ["workdays"])  # Sunday


def test_all_fields_of_a_spec_must_match_and_any_spec_may():
    ti = intervals(office=[{"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}]},
                           {"days_of_month": ["1"]}])
    assert ti.is_muted(ms(2024, 5, 6, 10, 0), ["office"])  # Monday 10:00
    assert not ti.is_muted(ms(2024, 5, 6, 18, 0), ["office"])
    assert ti.is_muted(ms(2024, 6, 1, 23, 0), ["office"])  # Saturday, but the 1st
    both = intervals(a=[{"months": ["july"]}], b=[{"days_of_month": ["1"]}], c=[{}])
    assert both.active(ms(2024, 6, 1, 23, 0), ["a", "b", "c"]) == "b"  # the first active one


def test_days_of_month_count_from_the_end_when_negative():
    ti = intervals(last=[{"days_of_month": ["-1"]}], first_week=[{"days_of_month": ["1:7"]}],
                   whole=[{"days_of_month": ["1:-1"]}], thirty_first=[{"days_of_month": ["31"]}])
    assert ti.is_muted(ms(2024, 2, 29, 12), ["last"]) and not ti.is_muted(ms(2024, 2, 28, 12), ["last"])
    assert ti.is_muted(ms(2024, 4, 30, 12), ["last"])
    assert ti.is_muted(ms(2024, 4, 7, 12), ["first_week"]) and not ti.is_muted(ms(2024, 4, 8, 12), ["first_week"])
    assert ti.is_muted(ms(2024, 4, 15, 12), ["whole"])
    assert not ti.is_muted(ms(2024, 4, 30, 12), ["thirty_first"])  # April has 30 days


def test_months_and_years():
    ti = intervals(q1=[{"months": ["january:march"]}], dec=[{"months": [12]}], y=[{"years": ["2024:2025"]}])
    assert ti.is_muted(ms(2024, 2, 1), ["q1"]) and not ti.is_muted(ms(2024, 4, 1), ["q1"])
    assert ti.is_muted(ms(2024, 12, 24), ["dec"])
    assert ti.is_muted(ms(2025, 6, 1), ["y"]) and not ti.is_muted(ms(2026, 1, 1), ["y"])


def test_empty_names_never_mute_and_unknown_names_raise():
    ti = intervals(x=[{}])
    assert ti.is_muted(ms(2024, 1, 1), ["x"])  # a spec without fields always matches
    assert ti.active(ms(2024, 1, 1), []) is None
    with pytest.raises(KeyError):
        ti.is_muted(ms(2024, 1, 1), ["nope"])


@pytest.mark.parametrize("spec", [
    {"times": [{"start_time": "18:00", "end_time": "08:00"}]},
    {"times": [{"start_time": "25:00", "end_time": "26:00"}]},
    {"times": [{"start_time": "8:00", "end_time": "09:00"}]},
    {"weekdays": ["saturday:sunday"]},
    {"weekdays": ["funday"]},
    {"weekdays": ["1"]},
    {"days_of_month": ["0"]},
    {"days_of_month": ["5:1"]},
    {"days_of_month": ["32"]},
    {"months": ["13"]},
    {"months": ["march:january"]},
    {"years": ["2026:2024"]},
    {"location": "Mars/Olympus"},
    {"location": "Local"},
    {"hours": ["1"]},
])
def test_invalid_specs(spec):
    with pytest.raises(ValidationError):
        TimeSpec.model_validate(spec)
