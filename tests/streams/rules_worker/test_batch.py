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
        self.wire: list[tuple[str, int | None, bytes | None]] = []  # changelog records and delivery waits, in order

    def get(self, key: bytes) -> Any:
        return self.data.get(key)

    def items(self):
        return self.data.items()

    def put(self, partition: int, key: bytes, value: Any) -> None:
        self.log.events.append(("put", key))
        self.wire.append(("put", partition, key))
        self.data[key] = value

    def delete(self, partition: int, key: bytes) -> None:
        self.log.events.append(("delete", key))
        self.wire.append(("delete", partition, key))
        del self.data[key]

    async def flush(self) -> None:
        self.log.events.append(("flush", None))

    async def delivered(self) -> None:
        self.log.events.append(("delivered", None))
        self.wire.append(("delivered", None, None))


def make(log: Log, *, fail_alerts: bool = False, retention_s: float = 3600.0):
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
                        dead_letter=dead_letter, metrics=RulesMetrics(), finished=FinishedCalls(retention_s),
                        partitions=4)
    return ev, dead


def angry_call(call_id: str = "c-1", partition: int = 0) -> list[Source]:
    msgs = synthetic_call(call_id, [(6000, {"angry": 0.95})], business_line="default")
    return [Source("scores", partition, i, call_id.encode(), SCORES.encode(m, topic="scores"), [("trace", b"t")])
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

    monkeypatch.setattr(batch, "step_batch", broken)  # the whole batch fails: then message by message
    monkeypatch.setattr(batch, "step", broken)
    log = Log()
    ev, dead = make(log)
    asyncio.run(ev.handle(angry_call()[:1]))
    [(_src, err, call_id)] = dead
    assert err.stage == "EVALUATE" and "ZeroDivisionError: boom" in err.reason and call_id == "c-1"
    assert isinstance(err.cause, ZeroDivisionError)


def test_a_bug_hit_by_one_message_dead_letters_only_that_message(monkeypatch):
    import emowatch.streams.rules_worker.batch as batch

    real = batch.step

    def fails_on_seq_2(state, scores, crs):
        if scores["seq"] == 2:
            raise ZeroDivisionError("boom")
        return real(state, scores, crs)

    def broken(*_a, **_k):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(batch, "step_batch", broken)
    monkeypatch.setattr(batch, "step", fails_on_seq_2)
    log = Log()
    ev, dead = make(log)
    msgs = angry_call()
    asyncio.run(ev.handle(msgs))
    assert [(s.offset, e.stage) for s, e, _ in dead] == [(2, "EVALUATE")]
    state = ev.table.get(b"c-1")
    assert state["r"]["CUSTOMER"]["seq"] == len(msgs) - 1 and [k for k, _ in log.events].count("alert") > 0


def test_redelivered_messages_are_duplicates_and_write_nothing_new():
    log = Log()
    ev, _ = make(log)
    msgs = angry_call()
    asyncio.run(ev.handle(msgs))
    alerts = [k for k, _ in log.events].count("alert")
    log.events.clear()
    asyncio.run(ev.handle(msgs))
    assert [k for k, _ in log.events] == [] and alerts > 0


def test_a_batch_of_many_calls_gives_the_alerts_and_states_of_step_one_message_after_the_other():
    import json

    import numpy as np

    from emowatch.rules.engine import step
    from emowatch.rules.testing import interleave, random_timeline

    rng = np.random.default_rng(3)
    calls = [synthetic_call(f"m-{i}", random_timeline(rng, 20, episodes=("angry", "fearful"), episode_share=0.6),
                            role="AGENT" if i % 3 == 2 else "CUSTOMER", noise=0.3, seed=i) for i in range(12)]
    msgs = interleave(calls)
    msgs.insert(30, dict(msgs[5]))  # a redelivered message inside the batch
    sources = [Source("scores", i % 4, i, m["call_id"].encode(), SCORES.encode(m, topic="scores"), [])
               for i, m in enumerate(msgs)]
    log = Log()
    ev, dead = make(log)
    sent: list[bytes] = []
    send = ev.send_alert

    async def keep(key, value):
        sent.append(value)
        return await send(key, value)

    ev.send_alert = keep
    for b0 in range(0, len(sources), 70):  # several messages per call in each batch
        asyncio.run(ev.handle(sources[b0:b0 + 70]))
    crs = ev.rules.current[1]
    states: dict = {}
    oracle: list[dict] = []
    for m in msgs:
        states[m["call_id"]], out = step(states.get(m["call_id"]), m, crs)
        oracle += out
    alerts = serde_for(K, "Alert")
    got = [{k: v for k, v in alerts.decode(a, topic="alerts").items() if k != "trace_id"} for a in sent]
    assert got == oracle and len(oracle) > 10 and not dead  # the same alerts, in the same order
    stored = {k.decode(): json.dumps(v) for k, v in ev.table.data.items()}
    assert stored == {c: json.dumps(s) for c, s in states.items()}  # as step() would have stored them
    assert ev.metrics.stage.discarded.labels("duplicate")._value.get() == 1


def test_states_evaluated_over_several_batches_are_written_once_at_the_flush():
    from emowatch.rules.engine import step

    log = Log()
    ev, dead = make(log)
    msgs = angry_call()
    asyncio.run(ev.evaluate(msgs[:3]))
    asyncio.run(ev.evaluate(msgs[3:]))
    assert "put" not in [k for k, _ in log.events] and "alert" in [k for k, _ in log.events]
    state = None
    for m in synthetic_call("c-1", [(6000, {"angry": 0.95})], business_line="default"):
        state, _ = step(state, m, ev.rules.current[1])
    assert ev.state_of("c-1", b"c-1") == state and ev.table.get(b"c-1") is None  # read through, not yet written
    asyncio.run(ev.flush())
    assert [k for k, _ in log.events].count("put") == 1 and ev.table.get(b"c-1") == state and not dead


@pytest.mark.parametrize("retention_s", [3600.0, 1e-9])
def test_each_partitions_last_changelog_record_is_sent_alone_after_every_record_before_it_is_acknowledged(
        retention_s):
    """The local broker's ListOffsets(latest) answers the base offset of the last record batch + 1, and a
    restarted worker's table recovery reads the changelog only that far: each partition's last record of a
    flush must be in a batch of its own. With (almost) no retention, the third flush also deletes the calls
    ended in the second, and tombstones are the partitions' last records."""
    log = Log()
    ev, dead = make(log, retention_s=retention_s)
    calls = {c: angry_call(c, i % 3) for i, c in enumerate(f"c-{i}" for i in range(9))}  # 3 on each of 0-2
    later = [angry_call(f"d-{p}", p)[0] for p in range(3)]  # then one new call on each partition
    assert all(len(msgs) >= 2 for msgs in calls.values())
    flushes = [[m[0] for m in calls.values()], [x for m in calls.values() for x in m[1:]], later]
    for n, batch in enumerate(flushes):  # the calls open, then ended, then new ones
        ev.table.wire.clear()
        asyncio.run(ev.handle(batch))
        wait = ev.table.wire.index(("delivered", None, None))
        records, after = [r for r in ev.table.wire if r[0] != "delivered"], ev.table.wire[wait + 1:]
        assert sorted(p for _, p, _ in after) == [0, 1, 2]  # one per partition, alone after the wait
        for kind, p, key in after:  # ... and it is the partition's last record of the flush
            assert [r for r in records if r[1] == p][-1] == (kind, p, key)
        assert len([r for r in records if r[0] == "put"]) == len({m.key for m in batch}) and not dead  # once each
        tombstones = sorted(key for kind, _, key in records if kind == "delete")
        assert tombstones == (sorted(c.encode() for c in calls) if n == 2 and retention_s < 1 else [])
    assert sorted(ev.table.data) == sorted([m.key for m in later] + ([c.encode() for c in calls] * (retention_s > 1)))
