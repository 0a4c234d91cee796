"""Replay parameters: times, the call window, the business-line scope, deterministic ids."""
from __future__ import annotations

import pytest

from emowatch.streams.replay.params import (
    ReplayParamsError,
    Scope,
    Window,
    iso,
    parse_time,
    replay_id_for,
    worker_line,
)

NOW = 1_764_000_000_000


def test_times() -> None:
    assert parse_time("2026-11-23T08:00:00Z", NOW) == parse_time("2026-11-23T08:00:00", NOW) == 1_795_420_800_000
    assert parse_time("2026-11-23T09:00:00+01:00", NOW) == 1_795_420_800_000
    assert parse_time("1795420800000", NOW) == 1_795_420_800_000
    assert parse_time("-2h", NOW) == parse_time("now-2h", NOW) == NOW - 7_200_000
    assert parse_time("now", NOW) == NOW
    assert iso(1_795_420_800_123) == "2026-11-23T08:00:00.123Z" and iso(None) is None
    for bad in ("yesterday", "-2x", "2026-13-01"):
        with pytest.raises(ReplayParamsError):
            parse_time(bad, NOW)


def test_the_window_holds_calls_that_started_in_it_up_to_its_end() -> None:
    w = Window(10_000, 20_000)
    assert w.holds(event_time=12_000, start_ms=2_000)       # started at 10 s
    assert not w.holds(event_time=12_000, start_ms=2_001)   # started before: left out whole
    assert not w.holds(event_time=20_000, start_ms=5_000)   # at --to: cut
    assert Window(10_000).holds(event_time=10**12, start_ms=0)
    with pytest.raises(ReplayParamsError):
        Window(10_000, 10_000)


def test_scope_is_the_rules_workers() -> None:
    assert worker_line(None, "vip") == "vip" and worker_line("vip", "vip") == "vip"
    assert worker_line(None, "*") == "*" and worker_line("retail", "*") == "retail"
    with pytest.raises(ReplayParamsError, match="serves business line 'vip'"):
        worker_line("retail", "vip")
    s = Scope("retail", frozenset({"c1"}))
    assert s.line_ok("retail") and not s.line_ok("vip") and Scope().line_ok("anything")
    assert s.call_ok("c1") and not s.call_ok("c2") and Scope().call_ok("c2")


def test_replay_ids_are_deterministic_and_cover_the_parameters() -> None:
    base = dict(rule_set="default", rule_version="abc", window=Window(1, 2), scope=Scope(), source="kafka")
    a = replay_id_for(**base)
    assert a == replay_id_for(**base) and a.startswith("r-") and len(a) == 18
    others = {replay_id_for(**{**base, "window": Window(1, 3)}), replay_id_for(**{**base, "source": "clickhouse"}),
              replay_id_for(**{**base, "rule_version": "abd"}), replay_id_for(**base, sweep="x.for=1s:2s:1s"),
              replay_id_for(**{**base, "scope": Scope("*", frozenset({"c"}))})}
    assert a not in others and len(others) == 5
