"""kill -9 of the ClickHouse sink mid-run, restarted each time: every row lands exactly once, without FINAL.

The sink runs as a real worker process (``emowatch worker sink`` through LocalStack, embedded ClickHouse)
with small batches cut by size and by age (batch_rows 40, batch_ms 20), so kills land between a batch's
recorded cut, its insert and its offset commit. It is killed with SIGKILL each time its group has
committed another slice of the input (3 kills; 6 with EMOWATCH_FULL=1), restarted, and at the end
``SELECT count()`` on ``scores`` and ``alerts`` - no FINAL, no merge - must equal the number of distinct
(call, role, seq) and distinct (alert_id, status): a re-read batch cut at other offsets would carry
another insert_deduplication_token and double its rows.
"""
from __future__ import annotations

import time

import pytest

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, make_producer, serde_for, topics_for
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.examples import example_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TIMEOUT = 180
ENV = {"EMOWATCH_SINK__BATCH_ROWS": "40", "EMOWATCH_SINK__BATCH_MS": "20"}


def _publish(kafka, n_scores: int, n_alerts: int) -> None:
    t = topics_for(kafka)
    producer = make_producer(kafka)
    scores, alerts = serde_for(kafka, "FrameScores"), serde_for(kafka, "Alert")
    now = int(time.time() * 1000)  # rows older than the tables' TTL would be dropped on insert
    for i in range(n_scores):
        rec = example_record("FrameScores", call_id=f"call-{i % 97}", seq=i // 97, event_time=now + i)
        producer.produce(t.scores, key=rec["call_id"].encode(), value=scores.encode(rec, topic=t.scores))
        producer.poll(0)
    for i in range(n_alerts):
        rec = example_record("Alert", call_id=f"call-{i % 97}", alert_id=f"a-{i // 2}",
                             status="FIRING" if i % 2 == 0 else "RESOLVED", event_time=now + i)
        producer.produce(t.alerts, key=rec["call_id"].encode(), value=alerts.encode(rec, topic=t.alerts))
        producer.poll(0)
    assert producer.flush(60) == 0


def test_kill_minus_9_and_restarts_leave_every_row_exactly_once(broker, tmp_path, unique, size):
    n_scores, n_alerts, kills = size(3000, 20000), size(400, 2000), size(3, 6)
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"sk{unique}.").start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        _publish(kafka, n_scores, n_alerts)
        group, total = group_name(kafka, "emowatch-sink"), n_scores + n_alerts
        left = total
        for kill in range(kills):
            stack.start_worker(f"sink-{kill}", ["sink"], env=ENV)
            target = total * (kills - kill) / (kills + 1)  # committed another slice of the input
            deadline = time.monotonic() + TIMEOUT
            while (lag := sum(group_lag(stack.bootstrap, group, [t.scores, t.alerts]).values())) > target \
                    or lag >= left:  # and progress of its own
                stack.check_workers()
                assert time.monotonic() < deadline, f"sink {kill} committed too little"
            assert stack.stop_worker(f"sink-{kill}", kill=True) == -9
            left = sum(group_lag(stack.bootstrap, group, [t.scores, t.alerts]).values())
            assert left > 0, f"sink {kill} finished before it could be killed: the test proves nothing"
            print(f"kill {kill + 1}: {left}/{total} messages uncommitted")
        stack.start_worker("sink-last", ["sink"], env=ENV)
        wait_for_lag_zero(stack, group, [t.scores, t.alerts], TIMEOUT)
        assert stack.stop_worker("sink-last") == 0
        from emowatch.streams.sink.clickhouse import connect

        client = connect(None, tmp_path, "emowatch")
        try:
            scores = client.query("SELECT count(), uniqExact(call_id, role, seq) FROM emowatch.scores").result_rows[0]
            alerts = client.query("SELECT count(), uniqExact(alert_id, status) FROM emowatch.alerts").result_rows[0]
        finally:
            client.close()
        assert scores == (n_scores, n_scores), f"scores rows {scores[0]}, distinct {scores[1]}"
        assert alerts == (n_alerts, n_alerts), f"alert rows {alerts[0]}, distinct {alerts[1]}"
        print(f"{kills} kills: {n_scores} score rows, {n_alerts} alert rows, 0 duplicates")
    finally:
        stack.stop()
