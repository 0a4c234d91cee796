"""Restarts: a dispatcher rebuilt from the notification log (seed) or from a snapshot (state/restore)
does not send again what was sent; failed deliveries are retried with the same key."""
from __future__ import annotations

import json

import pytest

from emowatch.streams.notify.errors import DispatcherStateError
from emowatch.streams.notify.grouping import Dispatcher
from emowatch.streams.notify.model import NotificationLogEntry
from emowatch.streams.notify.suppression import Ack, Silence

CONFIG = """
route:
  receiver: team
  group_wait: 5s
  group_interval: 30s
  repeat_interval: 1h
receivers:
  - {name: team, log: {}}
"""
S, H = 1000, 3_600_000


def fresh(make_config):
    return Dispatcher(make_config(CONFIG))


def deliver(dispatcher, now_ms, log):
    """due() at now_ms; every notification is delivered and logged (as JSON, like a real log)."""
    sent = dispatcher.due(now_ms)
    for n in sent:
        log.append(json.dumps(dispatcher.mark_sent(n, now_ms + 100).to_json()))
    return sent


def test_a_restarted_dispatcher_fed_the_same_alerts_sends_nothing_the_log_holds(make_config, make_alert, t0):
    before, log = fresh(make_config), []
    before.add(make_alert("a1"), t0)
    assert len(deliver(before, t0 + 5 * S, log)) == 1
    before.add(make_alert("a2"), t0 + 10 * S)
    (update,) = deliver(before, t0 + 35 * S, log)
    assert len(log) == 2

    after = fresh(make_config)
    after.seed(NotificationLogEntry.from_json(json.loads(line)) for line in log)
    restart = t0 + 10 * 60 * S
    after.add(make_alert("a1"), restart)
    after.add(make_alert("a2"), restart)
    assert after.due(restart + 5 * S) == []
    # the reminder comes an hour after the logged delivery, with the key the old dispatcher would have used
    (reminder,) = [n for n in _run(after, t0 + 35 * S + H + 30 * S)]
    (expected,) = [n for n in _run(before, t0 + 35 * S + H)]
    assert (reminder.repeat, reminder.idempotency_key) == (1, expected.idempotency_key)
    assert reminder.idempotency_key != update.idempotency_key
    # a new alert after the restart is news
    after.add(make_alert("a3"), reminder.at_ms + 1)
    (news,) = after.due(reminder.at_ms + 30 * S)
    assert sorted(a["alert_id"] for a in news.alerts) == ["a1", "a2", "a3"] and news.repeat == 0


def test_a_logged_resolution_is_not_repeated_after_a_restart(make_config, make_alert, t0):
    before, log = fresh(make_config), []
    before.add(make_alert("a1"), t0)
    deliver(before, t0 + 5 * S, log)
    before.add(make_alert("a1", "RESOLVED"), t0 + 10 * S)
    (resolved,) = deliver(before, t0 + 35 * S, log)
    assert resolved.status == "RESOLVED"

    after = fresh(make_config)
    after.seed([NotificationLogEntry.from_json(json.loads(line)) for line in log])
    assert after.add(make_alert("a1"), t0 + H) == []  # replayed FIRING of a finished alert
    assert after.add(make_alert("a1", "RESOLVED"), t0 + H) == []
    assert after.next_wakeup() is None


def test_only_the_resolution_replayed_is_still_notified(make_config, make_alert, t0):
    before, log = fresh(make_config), []
    before.add(make_alert("a1"), t0)
    deliver(before, t0 + 5 * S, log)  # crash: the RESOLVED never went out
    after = fresh(make_config)
    after.seed([NotificationLogEntry.from_json(json.loads(line)) for line in log])
    after.add(make_alert("a1", "RESOLVED"), t0 + 60 * S)
    (n,) = after.due(t0 + 65 * S)
    assert n.status == "RESOLVED" and [a["alert_id"] for a in n.alerts] == ["a1"]


def test_state_and_restore_continue_exactly(make_config, make_alert, t0):
    a = fresh(make_config)
    a.add(make_alert("a1"), t0)
    a.add(make_alert("a2", call_id="c2"), t0)
    a.due(t0 + 5 * S)
    a.add(make_alert("a3"), t0 + 6 * S)
    a.add_silence(Silence("s1", ('call_id="c2"',), t0, t0 + 2 * H, "alice"))
    a.ack(Ack("a1", "bob", "", t0 + 7 * S))
    b = fresh(make_config)
    b.restore(json.loads(json.dumps(a.state())))
    assert b.state() == a.state()
    assert _keys(_run(a, t0 + 3 * H)) == _keys(_run(b, t0 + 3 * H))
    assert a.drain_suppressed() and a.state() == b.state()
    with pytest.raises(DispatcherStateError):
        b.restore({"version": 99})


def test_restoring_into_a_config_without_the_receiver_reports_its_alerts(make_config, make_alert, t0):
    a = fresh(make_config)
    a.add(make_alert("a1"), t0)
    other = Dispatcher(make_config("route: {receiver: other}\nreceivers: [{name: other, log: {}}]\n"))
    other.restore(a.state())
    assert other.group_count == 0
    assert [(s.alert_id, s.reason, s.receiver) for s in other.drain_suppressed()] == [
        ("a1", "receiver-removed", "team")]


def test_a_failed_delivery_is_sent_again_at_the_next_tick_with_the_same_key(make_config, make_alert, t0):
    d = fresh(make_config)
    d.add(make_alert("a1"), t0)
    (first,) = d.due(t0 + 5 * S)
    assert d.mark_failed(first, t0 + 6 * S) is True
    (again,) = d.due(t0 + 35 * S)
    assert again.idempotency_key == first.idempotency_key and again.repeat == 0
    entry = d.mark_sent(again, t0 + 36 * S)
    assert entry == NotificationLogEntry("team", again.group_key, "FIRING", (("a1", "FIRING"),), 0, t0 + 36 * S,
                                         again.idempotency_key)
    assert NotificationLogEntry.from_json(json.loads(json.dumps(entry.to_json()))) == entry
    assert d.mark_failed(first, t0 + 40 * S) is False  # delivered already
    assert d.due(t0 + 65 * S) == []


def _run(dispatcher, end_ms):
    out = []
    while (wake := dispatcher.next_wakeup()) is not None and wake <= end_ms:
        out += dispatcher.due(wake)
    return out


def _keys(notifications):
    return [(n.at_ms, n.group_key, n.repeat, n.idempotency_key) for n in notifications]
