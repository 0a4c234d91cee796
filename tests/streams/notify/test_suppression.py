"""Silences, acks, mute/active time intervals and black-hole receivers: nothing is dropped silently,
every held-back alert is reported as Suppressed (once)."""
from __future__ import annotations

import pytest

from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.notify.grouping import Dispatcher
from emowatch.streams.notify.model import Suppressed
from emowatch.streams.notify.suppression import Ack, Silence

# T0 is 22:13:20 UTC; 'evening' mutes 22:00-22:30 UTC, so the first tick after it is at T0+1025 s.
CONFIG = """
route:
  receiver: team
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 1h
  routes:
    - matchers: ['business_line="night"']
      receiver: team
      mute_time_intervals: [evening]
    - matchers: ['business_line="office"']
      receiver: team
      active_time_intervals: [office]
    - matchers: ['business_line="void"']
      receiver: blackhole
receivers:
  - {name: team, log: {}}
  - {name: blackhole}
time_intervals:
  - name: evening
    time_intervals: [{times: [{start_time: '22:00', end_time: '22:30'}]}]
  - name: office
    time_intervals: [{times: [{start_time: '08:00', end_time: '18:00'}]}]
"""
S, H = 1000, 3_600_000


@pytest.fixture(name="dispatcher")
def dispatcher_fixture(make_config):
    return Dispatcher(make_config(CONFIG))


def test_a_silence_suppresses_reports_once_and_lets_go_when_it_ends(dispatcher, make_alert, t0):
    dispatcher.add_silence(Silence("s1", ('call_id="12345"',), t0, t0 + 60 * S, "alice", "known issue"))
    dispatcher.add(make_alert("a1"), t0)
    assert dispatcher.due(t0 + 5 * S) == []
    key = '{}:team:{call_id="12345"}'
    assert dispatcher.drain_suppressed() == [Suppressed("a1", "silenced:s1", "team", "FIRING", key, t0 + 5 * S)]
    assert dispatcher.due(t0 + 35 * S) == [] and dispatcher.drain_suppressed() == []  # reported once
    (n,) = dispatcher.due(t0 + 65 * S)  # the silence ended at t0+60 s
    assert n.repeat == 0 and [a["alert_id"] for a in n.alerts] == ["a1"]
    assert dispatcher.silences() == []  # expired silences are dropped


def test_a_silence_only_holds_back_what_it_matches(dispatcher, make_alert, t0):
    dispatcher.add_silence(Silence("s1", ('rule_id=~"angry.*"', 'priority!="CRITICAL"'), t0, t0 + H))
    dispatcher.add(make_alert("a1"), t0)
    dispatcher.add(make_alert("a2", priority="CRITICAL"), t0)
    (n,) = dispatcher.due(t0 + 5 * S)
    assert [a["alert_id"] for a in n.alerts] == ["a2"]
    assert [s.alert_id for s in dispatcher.drain_suppressed()] == ["a1"]
    assert dispatcher.remove_silence("s1") and not dispatcher.remove_silence("s1")
    (n,) = dispatcher.due(t0 + 35 * S)
    assert sorted(a["alert_id"] for a in n.alerts) == ["a1", "a2"]


def test_silences_are_validated():
    with pytest.raises(MatcherError):
        Silence("s", (), 0, 1)
    with pytest.raises(MatcherError):
        Silence("s", ('team=~".*"',), 0, 1)  # would match everything
    with pytest.raises(MatcherError):
        Silence("s", ('team="x"',), 5, 5)
    with pytest.raises(MatcherError):
        Silence("s", ('team=~"("',), 0, 1)


def test_an_ack_stops_reminders_but_the_resolution_is_still_sent(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1"), t0)
    assert len(dispatcher.due(t0 + 5 * S)) == 1
    assert dispatcher.ack(Ack("a1", "alice", "on it", t0 + 10 * S)) is True
    wake = t0 + 5 * S
    while wake < t0 + 3 * H:
        wake += 30 * S
        assert dispatcher.due(wake) == []
    assert dispatcher.drain_suppressed() == [
        Suppressed("a1", "acked:alice", "team", "FIRING", '{}:team:{call_id="12345"}', t0 + 35 * S)]
    dispatcher.add(make_alert("a1", "RESOLVED"), wake + 1)
    (n,) = dispatcher.due(wake + 30 * S)
    assert n.status == "RESOLVED" and dispatcher.group_count == 0


def test_an_acked_alert_is_left_out_of_later_updates(dispatcher, make_alert, t0):
    dispatcher.ack(Ack("a1", "bob"))  # acked before it arrives: kept
    dispatcher.add(make_alert("a1"), t0)
    dispatcher.add(make_alert("a2"), t0)
    (n,) = dispatcher.due(t0 + 5 * S)
    assert [a["alert_id"] for a in n.alerts] == ["a2"]


def test_a_mute_interval_drops_flushes_and_the_next_tick_after_it_sends(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", business_line="night"), t0)
    assert dispatcher.due(t0 + 5 * S) == []
    (report,) = dispatcher.drain_suppressed()
    assert (report.alert_id, report.reason) == ("a1", "muted:evening")
    wake, sent = t0 + 5 * S, []
    while not sent:
        wake = dispatcher.next_wakeup()
        sent = dispatcher.due(wake)
    assert wake == t0 + 1025 * S  # 22:30:05, the first tick after the window
    assert dispatcher.drain_suppressed() == []


def test_resolved_during_a_mute_window_is_not_held(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", business_line="night"), t0)
    dispatcher.add(make_alert("a1", "RESOLVED", business_line="night"), t0 + 10 * S)
    assert dispatcher.due(t0 + 5 * S) == []
    assert dispatcher.group_count == 0  # Alertmanager drops the muted flush; the alert is over


def test_outside_active_intervals_nothing_is_sent(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", business_line="office"), t0)
    assert dispatcher.due(t0 + 5 * S) == []
    assert [s.reason for s in dispatcher.drain_suppressed()] == ["inactive:office"]


def test_a_receiver_without_integrations_is_a_reported_black_hole(dispatcher, make_alert, t0):
    assert dispatcher.add(make_alert("a1", business_line="void"), t0) == []
    assert dispatcher.add(make_alert("a1", business_line="void"), t0 + 1) == []
    assert dispatcher.drain_suppressed() == [Suppressed("a1", "blackhole", "blackhole", "FIRING", "", t0)]
    assert dispatcher.next_wakeup() is None
