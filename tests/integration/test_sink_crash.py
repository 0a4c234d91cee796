"""kill -9 of the ClickHouse sink inside its crash windows and at a random moment, restarted each time: every
row lands exactly once, without FINAL.

The sink runs as a real worker process (``emowatch worker sink`` through LocalStack, embedded ClickHouse)
with small batches (batch_rows 40, batch_ms 20) while a producer trickles score and alert messages in, so
batches are cut by age (timing-dependent, recorded in ``sink_batches`` before the insert) as well as by size.
Each cycle:

1. a sink armed with ``EMOWATCH_FAULT_POINTS=sink.after_record=kill@N`` SIGKILLs itself after recording a
   batch's cut, before inserting it;
2. the next sink, armed with ``sink.after_recut_insert=kill``, must cut the batch of the first kill at the
   recorded offsets (the point is hit for a re-cut batch only), insert it and kill itself there, before its
   commit: the rows are in ClickHouse, the offsets are not; no new messages are produced meanwhile;
3. the next sink must report a re-cut of that batch too (re-inserted with the same
   insert_deduplication_token, so ClickHouse drops it), and is killed with SIGKILL by the test at a
   moment of no particular code path (its group has committed more since it started).

A last sink catches up once the producer stopped; then ``SELECT count()`` on ``scores`` and ``alerts`` - no
FINAL - must equal the messages produced and the distinct (call, role, seq) and (alert_id, status). A
re-read batch cut at other offsets than its first insert would carry another token and double its rows;
as a background merge of the ReplacingMergeTree tables may collapse such a duplicate before the count, the
test also counts the rows of every insert ClickHouse accepted (materialized views it adds to the
database, deduplicated like the tables) and wants exactly the messages produced. With the reload of
recorded cuts disabled, this test fails (docs/ARCHITECTURE.md "Fault points").
One cycle; two, at a higher rate, with TEST_FULL=1. The workers' session timeout is 2 s, so that a
sink started after a kill -9 does not wait 6 s for the dead member to leave the group.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from sink_helpers import count_inserted_rows, inserted_rows

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.clients import group_name, make_producer, serde_for, topics_for
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.topics.examples import example_record

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TIMEOUT = 120
ENV = {"EMOWATCH_SINK__BATCH_ROWS": "40", "EMOWATCH_SINK__BATCH_MS": "20",
       "EMOWATCH_KAFKA__SESSION_TIMEOUT_MS": "2000"}
FAULTS = "EMOWATCH_FAULT_POINTS"
RECUT = "batch re-cut at its recorded offsets"


class Trickle:
    """Produces unique score messages (and an alert event every 6th) at about ``rate``/s until stopped."""

    def __init__(self, kafka, rate: float) -> None:
        self.kafka, self.period = kafka, 1.0 / rate
        self.scores = self.alerts = 0
        self.stop_event = threading.Event()
        self.flowing = threading.Event()  # cleared: no new messages until set again
        self.flowing.set()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="trickle", daemon=True)

    def _run(self) -> None:
        try:
            t = topics_for(self.kafka)
            producer = make_producer(self.kafka, **{"linger.ms": 0})
            scores, alerts = serde_for(self.kafka, "FrameScores"), serde_for(self.kafka, "Alert")
            while not self.stop_event.is_set():
                if not self.flowing.is_set():
                    producer.poll(0)
                    self.flowing.wait(0.1)  # paused by the test; the stop event is checked every 0.1 s
                    continue
                now = int(time.time() * 1000)  # rows older than the tables' TTL would be dropped on insert
                i = self.scores
                rec = example_record("FrameScores", call_id=f"call-{i % 97}", seq=i // 97, event_time=now)
                producer.produce(t.scores, key=rec["call_id"].encode(), value=scores.encode(rec, topic=t.scores))
                self.scores += 1
                if i % 6 == 0:
                    j = self.alerts
                    rec = example_record("Alert", call_id=f"call-{j % 97}", alert_id=f"a-{j // 2}",
                                         status="FIRING" if j % 2 == 0 else "RESOLVED", event_time=now)
                    producer.produce(t.alerts, key=rec["call_id"].encode(), value=alerts.encode(rec, topic=t.alerts))
                    self.alerts += 1
                producer.poll(0)
                self.stop_event.wait(self.period)  # the pace of the trickle, not a synchronisation
            assert producer.flush(60) == 0
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            self.errors.append(exc)

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(90)
        assert not self.thread.is_alive() and not self.errors, self.errors


def _log(stack: LocalStack, name: str) -> list[dict]:
    out = []
    for line in (stack.data_dir / "logs" / f"{name}.log").read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def _recuts(stack: LocalStack, name: str) -> list[dict]:
    return [r for r in _log(stack, name) if r.get("msg") == RECUT]


def _wait_for(cond, what: str, stack: LocalStack, check_workers: bool = True) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not cond():
        if check_workers:
            stack.check_workers()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling interval of a deadline loop


def _killed_itself(stack: LocalStack, name: str, point: str) -> None:
    """The worker SIGKILLed itself at ``point`` (its fault point fired: the crash window was hit)."""
    w = stack.workers[name]
    _wait_for(lambda: not w.alive(), f"{name} to reach {point}", stack, check_workers=False)
    assert stack.stop_worker(name) == -9, w.tail()
    fired = [r for r in _log(stack, name) if r.get("msg") == "fault point: killing this process"]
    assert [r.get("fault_point") for r in fired] == [point], w.tail()


def test_kill_minus_9_inside_the_crash_windows_and_restarts_leave_every_row_exactly_once(broker, tmp_path, unique,
                                                                                        size):
    cycles, rate = size(1, 2), size(120, 300)
    stack = LocalStack(data_dir=tmp_path, broker=broker, topic_prefix=f"sk{unique}.").start()
    trickle = None
    try:
        count_inserted_rows(tmp_path)
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        group, topics = group_name(kafka, "emowatch-sink"), [t.scores, t.alerts]
        trickle = Trickle(kafka, rate)
        trickle.thread.start()

        def committed() -> int:  # about: the produced count includes the few messages not acked yet
            return trickle.scores + trickle.alerts - sum(group_lag(stack.bootstrap, group, topics).values())

        recuts = []
        for c in range(cycles):
            stack.start_worker(f"sink-{c}-a", ["sink"], env={**ENV, FAULTS: "sink.after_record=kill@20"})
            _killed_itself(stack, f"sink-{c}-a", "sink.after_record")

            # b re-cuts the batch a recorded (the point fires for a re-cut batch only), inserts it and kills itself
            # before its commit. It was `sink.after_insert=kill@60`: at full size (300 messages/s) b once spent its
            # 60 inserts on another partition's backlog first. No new messages meanwhile: b only re-reads
            trickle.flowing.clear()
            stack.start_worker(f"sink-{c}-b", ["sink"], env={**ENV, FAULTS: "sink.after_recut_insert=kill"})
            _killed_itself(stack, f"sink-{c}-b", "sink.after_recut_insert")
            trickle.flowing.set()

            stack.start_worker(f"sink-{c}-c", ["sink"], env=ENV)
            _wait_for(lambda c=c: _recuts(stack, f"sink-{c}-c"), "a re-cut after the kill at sink.after_recut_insert",
                      stack)
            recuts.append(_recuts(stack, f"sink-{c}-c"))
            start = committed()
            _wait_for(lambda start=start: committed() > start + 100, "the sink to commit more", stack)
            assert stack.stop_worker(f"sink-{c}-c", kill=True) == -9  # at a random point of its loop
        trickle.stop()
        stack.start_worker("sink-last", ["sink"], env=ENV)
        wait_for_lag_zero(stack, group, topics, TIMEOUT)
        assert stack.stop_worker("sink-last") == 0
        from emowatch.streams.sink.clickhouse import connect

        client = connect(None, tmp_path, "emowatch")
        try:
            scores = client.query("SELECT count(), uniqExact(call_id, role, seq) FROM emowatch.scores").result_rows[0]
            alerts = client.query("SELECT count(), uniqExact(alert_id, status) FROM emowatch.alerts").result_rows[0]
            landed = inserted_rows(client)
        finally:
            client.close()
        n_scores, n_alerts = trickle.scores, trickle.alerts
        assert landed == {"scores": n_scores, "alerts": n_alerts}, f"rows inserted {landed}, produced {n_scores} " \
            f"scores, {n_alerts} alerts"  # a duplicate that a merge collapsed since is counted here
        assert scores == (n_scores, n_scores), f"scores rows {scores[0]}, distinct {scores[1]}, produced {n_scores}"
        assert alerts == (n_alerts, n_alerts), f"alert rows {alerts[0]}, distinct {alerts[1]}, produced {n_alerts}"
        age_cuts = sum(1 for rs in recuts for r in rs if (r["last_offset"] + 1) % 40)
        print(f"{cycles} cycle(s), {3 * cycles} kills: {n_scores} score rows, {n_alerts} alert rows, 0 duplicates; "
              f"re-cuts {[len(rs) for rs in recuts]}, {age_cuts} of them age cuts")
    finally:
        if trickle is not None and trickle.thread.is_alive():
            trickle.stop_event.set()
        stack.stop()
