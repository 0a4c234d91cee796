"""The dispatcher's Alertmanager semantics with known answers: group_wait, group_interval batching,
repeat_interval reminders, RESOLVED with send_resolved only, latest status wins, duplicates."""
from __future__ import annotations

import hashlib
import json

import pytest

from emowatch.streams.notify.errors import InvalidAlertError
from emowatch.streams.notify.grouping import Dispatcher

CONFIG = """
route:
  receiver: team
  group_by: [call_id]
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 1h
  routes:
    - matchers: ['business_line="quiet"']
      receiver: quiet
    - matchers: ['business_line="both"']
      receiver: team
      continue: true
    - matchers: ['business_line="both"']
      receiver: quiet
receivers:
  - {name: team, log: {}}
  - {name: quiet, log: {send_resolved: false}}
"""
S, M, H = 1000, 60_000, 3_600_000


@pytest.fixture(name="dispatcher")
def dispatcher_fixture(make_config):
    return Dispatcher(make_config(CONFIG))


def ids(notification):
    return [(a["alert_id"], a["status"]) for a in notification.alerts]


def run_until(dispatcher, end_ms):
    """Call due() at every wakeup up to end_ms (what the service loop does)."""
    out = []
    while (wake := dispatcher.next_wakeup()) is not None and wake <= end_ms:
        out += dispatcher.due(wake)
    return out


def test_three_alerts_of_one_call_within_group_wait_make_one_notification(dispatcher, make_alert, t0):
    for i, offset in enumerate((0, 1 * S, 4 * S)):
        assert dispatcher.add(make_alert(f"a{i}", event_time=t0 + offset), t0 + offset) == ['{}:team:{call_id="12345"}']
    assert dispatcher.next_wakeup() == t0 + 5 * S
    assert dispatcher.due(t0 + 5 * S - 1) == []
    (n,) = dispatcher.due(t0 + 5 * S)
    assert (n.receiver, n.status, n.repeat, n.group_labels) == ("team", "FIRING", 0, {"call_id": "12345"})
    assert ids(n) == [("a0", "FIRING"), ("a1", "FIRING"), ("a2", "FIRING")]
    assert n.group_key == '{}:team:{call_id="12345"}' and n.route_id == "{}" and n.at_ms == t0 + 5 * S
    assert dispatcher.next_wakeup() == t0 + 35 * S


def test_later_changes_are_batched_per_group_interval(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1"), t0)
    assert len(dispatcher.due(t0 + 5 * S)) == 1
    dispatcher.add(make_alert("a2"), t0 + 6 * S)
    dispatcher.add(make_alert("a3", priority="CRITICAL"), t0 + 20 * S)
    assert dispatcher.due(t0 + 34 * S) == []
    (n,) = dispatcher.due(t0 + 35 * S)
    assert ids(n) == [("a3", "FIRING"), ("a1", "FIRING"), ("a2", "FIRING")]  # CRITICAL first
    assert n.repeat == 0
    assert dispatcher.due(t0 + 65 * S) == []  # nothing changed, no reminder yet


def test_each_call_is_its_own_group(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", call_id="c1"), t0)
    dispatcher.add(make_alert("a2", call_id="c2"), t0 + 2 * S)
    first, = dispatcher.due(t0 + 5 * S)
    second, = dispatcher.due(t0 + 7 * S)
    assert (first.group_labels, second.group_labels) == ({"call_id": "c1"}, {"call_id": "c2"})


def test_repeat_interval_reminders_count_up_with_distinct_keys(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1"), t0)
    sent = run_until(dispatcher, t0 + 3 * H)
    assert [(n.at_ms - t0, n.repeat, n.status) for n in sent] == [
        (5 * S, 0, "FIRING"), (5 * S + H, 1, "FIRING"), (5 * S + 2 * H, 2, "FIRING")]
    assert len({n.idempotency_key for n in sent}) == 3
    assert all(ids(n) == [("a1", "FIRING")] for n in sent)


def test_resolved_is_sent_once_and_only_with_send_resolved(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", business_line="both"), t0)
    assert sorted(n.receiver for n in dispatcher.due(t0 + 5 * S)) == ["quiet", "team"]
    assert dispatcher.add(make_alert("a1", "RESOLVED", business_line="both"), t0 + 10 * S) == sorted([
        '{}/{business_line="both"}/1:team:{call_id="12345"}', '{}/{business_line="both"}/2:quiet:{call_id="12345"}'])
    (n,) = dispatcher.due(t0 + 35 * S)
    assert (n.receiver, n.status, ids(n)) == ("team", "RESOLVED", [("a1", "RESOLVED")])
    assert dispatcher.group_count == 0 and dispatcher.next_wakeup() is None  # both groups finished


def test_a_group_update_lists_resolved_alerts_once(dispatcher, make_alert, t0):
    for name in ("a1", "a2"):
        dispatcher.add(make_alert(name), t0)
    assert len(dispatcher.due(t0 + 5 * S)) == 1
    dispatcher.add(make_alert("a2", "RESOLVED"), t0 + 10 * S)
    (n,) = dispatcher.due(t0 + 35 * S)
    assert (n.status, ids(n)) == ("FIRING", [("a1", "FIRING"), ("a2", "RESOLVED")])
    assert dispatcher.due(t0 + 65 * S) == []
    assert dispatcher.due(t0 + 5 * S + H) == []  # an hour after the first notification, not the last
    (reminder,) = dispatcher.due(t0 + 35 * S + H)
    assert ids(reminder) == [("a1", "FIRING")] and reminder.repeat == 0  # first message with exactly this set


def test_without_send_resolved_a_shrinking_group_is_not_notified(dispatcher, make_alert, t0):
    for name in ("a1", "a2"):
        dispatcher.add(make_alert(name, business_line="quiet"), t0)
    (n,) = dispatcher.due(t0 + 5 * S)
    assert n.receiver == "quiet"
    dispatcher.add(make_alert("a2", "RESOLVED", business_line="quiet"), t0 + 6 * S)
    assert dispatcher.due(t0 + 35 * S) == []
    dispatcher.add(make_alert("a1", "RESOLVED", business_line="quiet"), t0 + 40 * S)
    assert dispatcher.due(t0 + 65 * S) == [] and dispatcher.group_count == 0


def test_latest_status_wins_and_duplicates_are_no_ops(dispatcher, make_alert, t0):
    assert dispatcher.add(make_alert("a1"), t0)
    assert dispatcher.add(make_alert("a1", value=0.99), t0 + 1) == []  # same id and status
    assert dispatcher.add(make_alert("a1", "RESOLVED"), t0 + 2 * S)
    assert dispatcher.add(make_alert("a1", "RESOLVED"), t0 + 3 * S) == []
    assert dispatcher.add(make_alert("a1"), t0 + 4 * S) == []  # a late FIRING does not reopen it
    # fired and resolved before anyone was told: the episode is still news (unlike Alertmanager)
    (n,) = dispatcher.due(t0 + 5 * S)
    assert n.status == "RESOLVED" and ids(n) == [("a1", "RESOLVED")] and dispatcher.group_count == 0
    assert dispatcher.due(t0 + 6 * S) == []  # told once
    assert dispatcher.add(make_alert("a1"), t0 + 10 * S) == []  # still remembered as resolved


def test_status_is_firing_while_any_alert_fires(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1"), t0)
    dispatcher.add(make_alert("a2", "RESOLVED"), t0)
    (n,) = dispatcher.due(t0 + 5 * S)
    assert n.status == "FIRING" and ids(n) == [("a1", "FIRING"), ("a2", "RESOLVED")]


def test_continue_sends_one_notification_per_receiver(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1", business_line="both"), t0)
    sent = dispatcher.due(t0 + 5 * S)
    assert [(n.receiver, n.route_id) for n in sent] == [
        ("team", '{}/{business_line="both"}/1'), ("quiet", '{}/{business_line="both"}/2')]


def test_idempotency_key_is_a_known_hash(dispatcher, make_alert, t0):
    dispatcher.add(make_alert("a1"), t0)
    (n,) = dispatcher.due(t0 + 5 * S)
    text = json.dumps(["team", '{}:team:{call_id="12345"}', "FIRING", [["a1", "FIRING"]], 0],
                      separators=(",", ":"), ensure_ascii=False)
    assert n.idempotency_key == hashlib.sha256(text.encode()).hexdigest()
    assert n.idempotency_key == "ed113293fe62ea4f587ab6dce91d36d123f7119e3df99d29cca24a5c611add0c"


def test_keys_are_stable_across_runs(make_config, make_alert, t0):
    def run():
        d = Dispatcher(make_config(CONFIG))
        for i in range(3):
            d.add(make_alert(f"a{i}", call_id=f"c{i % 2}"), t0 + i * S)
        sent = run_until(d, t0 + 49 * S)
        d.add(make_alert("a0", "RESOLVED", call_id="c0"), t0 + 50 * S)
        sent += run_until(d, t0 + 3 * H)
        return [(n.at_ms - t0, n.group_key[-5:], n.status, n.repeat, n.idempotency_key) for n in sent]
    first = run()
    assert first == run() and len({k[-1] for k in first}) == len(first)
    assert [k[:4] for k in first] == [
        (5 * S, '"c0"}', "FIRING", 0), (6 * S, '"c1"}', "FIRING", 0), (65 * S, '"c0"}', "FIRING", 0),
        (6 * S + H, '"c1"}', "FIRING", 1), (65 * S + H, '"c0"}', "FIRING", 0),  # first time with only a2 firing
        (6 * S + 2 * H, '"c1"}', "FIRING", 2), (65 * S + 2 * H, '"c0"}', "FIRING", 1)]


@pytest.mark.parametrize("record", [{"status": "FIRING"}, {"alert_id": "x", "status": "PENDING"}, {"alert_id": ""}])
def test_invalid_records_are_rejected(dispatcher, record, t0):
    with pytest.raises(InvalidAlertError):
        dispatcher.add(record, t0)
