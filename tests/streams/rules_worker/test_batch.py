"""The rules worker's batch core with the table and the sends injected (no broker, no Faust)."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emowatch.rules.testing import synthetic_call
from emowatch.streams.kafka.clients import serde_for
from emowatch.streams.resources import default_rules_file
from emowatch.streams.rules_worker.active_rules import ActiveRules, initial_selector
from emowatch.streams.rules_worker.batch import BatchEvaluator
from emowatch.streams.rules_worker.finished_calls import FinishedCalls
from emowatch.streams.rules_worker.metrics import RulesMetrics
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.dlq import Source
from emowatch.topics.errors import DeadLetterError

K = KafkaSettings()
SCORES = serde_for(K, "FrameScores")


class Log:
    """What happened, in order: ('alert', key) queued, ('ack', what) acknowledged, ('put', key), ..."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []


class DictTable:
    def __init__(self, log: Log) -> None:
        self.data: dict[bytes, Any] = {}
        self.log = log

    def get(self, key: bytes) -> Any:
        return self.data.get(key)

    def items(self):
        return self.data.items()

    def put(self, partition: int, key: bytes, value: Any) -> None:
        self.log.events.append(("put", key))
        self.data[key] = value

    def delete(self, partition: int, key: bytes) -> None:
        self.log.events.append(("delete", key))
        del self.data[key]

    async def flush(self) -> None:
        self.log.events.append(("flush", None))


def make(log: Log, *, fail_alerts: bool = False):
    dead: list[tuple[Source, DeadLetterError, Any]] = []

    async def ack_later(what):
        await asyncio.sleep(0)
        if fail_alerts and what[0] == "alert":
            raise RuntimeError("broker gone")
        log.events.append(("ack", what))

    async def send_alert(key: bytes, value: bytes):
        log.events.append(("alert", key))
        return ack_later(("alert", key))

    async def dead_letter(source: Source, error: DeadLetterError, call_id):
        dead.append((source, error, call_id))
        log.events.append(("dlq", source.offset))
        return ack_later(("dlq", source.offset))

    rules = ActiveRules(initial_selector("*", default_rules_file()), 1.0)
    ev = BatchEvaluator(business_line="*", rules=rules, table=DictTable(log),
                        scores_serde=serde_for(K, "FrameScores", float_arrays="numpy"),
                        alert_serde=serde_for(K, "Alert"), alerts_topic="alerts", send_alert=send_alert,
                        dead_letter=dead_letter, metrics=RulesMetrics(), finished=FinishedCalls(3600.0), partitions=4)
    return ev, dead


def angry_call(call_id: str = "c-1") -> list[Source]:
    msgs = synthetic_call(call_id, [(6000, {"angry": 0.95})], business_line="default")
    return [Source("scores", 0, i, call_id.encode(), SCORES.encode(m, topic="scores"), [("trace", b"t")])
            for i, m in enumerate(msgs)]


def test_alerts_are_acknowledged_before_any_state_is_written():
    log = Log()
    ev, dead = make(log)
    asyncio.run(ev.handle(angry_call()))
    kinds = [k for k, _ in log.events]
    assert "alert" in kinds and "put" in kinds and not dead
    last_ack = max(i for i, (k, _) in enumerate(log.events) if k == "ack")
    first_put = kinds.index("put")
    assert last_ack < first_put, log.events
    assert kinds.count("put") == 1  # one write per call per batch


def test_an_alert_that_cannot_be_delivered_fails_the_batch_before_any_write():
    log = Log()
    ev, _ = make(log, fail_alerts=True)
    with pytest.raises(RuntimeError, match="broker gone"):
        asyncio.run(ev.handle(angry_call()))
    assert "put" not in [k for k, _ in log.events]


def test_bad_messages_are_dead_lettered_with_their_original_bytes_and_headers():
    log = Log()
    ev, dead = make(log)
    good = angry_call()
    garbage = Source("scores", 1, 7, b"c-2", b"\x00not avro", [("traceparent", b"00-abc"), ("x", None)])
    [empty_id] = [Source("scores", 2, 3, b"", SCORES.encode({**synthetic_call("x", [(1000, {"angry": 0.5})],
                                                                               business_line="default")[0],
                                                            "call_id": ""}, topic="scores"), [("h", b"1")])]
    asyncio.run(ev.handle([garbage, *good, empty_id]))
    assert [(s, e.stage) for s, e, _ in dead] == [(garbage, "DECODE"), (empty_id, "DECODE")]
    assert "non-empty" in dead[1][1].reason
    # the dead letters are acknowledged before the batch's states are written
    kinds = [k for k, _ in log.events]
    assert max(i for i, (k, w) in enumerate(log.events) if k == "ack" and w[0] == "dlq") < kinds.index("put")


def test_an_evaluation_bug_is_dead_lettered_at_stage_evaluate(monkeypatch):
    import emowatch.streams.rules_worker.batch as batch

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(batch, "step", broken)
    log = Log()
    ev, dead = make(log)
    asyncio.run(ev.handle(angry_call()[:1]))
    [(_src, err, call_id)] = dead
    assert err.stage == "EVALUATE" and "ZeroDivisionError: boom" in err.reason and call_id == "c-1"
    assert isinstance(err.cause, ZeroDivisionError)


def test_redelivered_messages_are_duplicates_and_write_nothing_new():
    log = Log()
    ev, _ = make(log)
    msgs = angry_call()
    asyncio.run(ev.handle(msgs))
    alerts = [k for k, _ in log.events].count("alert")
    log.events.clear()
    asyncio.run(ev.handle(msgs))
    assert [k for k, _ in log.events] == [] and alerts > 0
