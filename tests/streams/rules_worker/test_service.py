"""RulesWorker wiring without a broker: fail-stop on an incomplete batch, rules-topic rejections."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.testing import synthetic_call
from emowatch.streams.kafka.clients import serde_for
from emowatch.streams.rules_worker.held import HeldMessages
from emowatch.streams.rules_worker.service import EXIT_BATCH_FAILED, RulesWorker
from emowatch.streams.settings import KafkaSettings, Settings
from emowatch.topics.dlq import Source

FILES = {p.stem: p for p in bundled_rule_files()}


class Exited(Exception):
    pass


def worker() -> tuple[RulesWorker, list[int]]:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise Exited(code)

    return RulesWorker(Settings(kafka=KafkaSettings(topic_prefix="svc.")), business_line="*",
                       rules_file=FILES["default"], exit=fake_exit), codes


def event(offset: int, value: bytes, headers=None):
    msg = SimpleNamespace(topic="svc.emowatch.scores.v1", partition=0, offset=offset, headers=headers or [])
    return SimpleNamespace(message=msg, key=b"c-1", value=value)


def angry_events():
    serde = serde_for(KafkaSettings(), "FrameScores")
    return [event(i, serde.encode(m, topic="s"))
            for i, m in enumerate(synthetic_call("c-1", [(5000, {"angry": 0.95})], business_line="default"))]


def test_a_batch_whose_alerts_cannot_be_delivered_exits_70_and_acknowledges_nothing():
    w, codes = worker()

    async def undeliverable(key: bytes, value: bytes):
        raise RuntimeError("alerts topic unreachable")

    w.evaluator.send_alert = undeliverable
    acked = []

    async def ack(e):
        acked.append(e)

    with pytest.raises(Exited):
        asyncio.run(w.process_batch(angry_events(), ack))
    assert codes == [EXIT_BATCH_FAILED] == [70]
    assert acked == [] and dict(w.calls.data) == {}


def _recording(w):
    """Alerts delivered, table writes recorded (no Faust producer): ``(sent keys, put keys)``."""
    sent, puts = [], []

    async def deliver(key: bytes, value: bytes):
        sent.append(key)
        return asyncio.sleep(0)

    async def no_write_flush():
        pass

    w.evaluator.send_alert = deliver
    w.evaluator.table.put = lambda partition, key, value: puts.append(key)
    w.evaluator.table.flush = no_write_flush
    return sent, puts


def test_a_completed_batch_is_held_then_written_and_acknowledged_message_by_message():
    w, codes = worker()
    sent, puts = _recording(w)
    acked = []

    async def ack(e):
        acked.append(e.message.offset)

    events = angry_events()
    asyncio.run(w.process_batch(events, ack))
    assert codes == [] and sent and puts == [] and acked == []  # alerts out at once; state and acks held
    assert len(w.held) == len(events) and w.evaluator.state_of("c-1", b"c-1")["r"]["CUSTOMER"]["seq"] == 4
    asyncio.run(w.flush(ack))
    assert puts == [b"c-1"] and acked == [e.message.offset for e in events] and len(w.held) == 0


def test_states_are_written_once_enough_messages_are_held():
    w, _ = worker()
    _, puts = _recording(w)
    w.held = HeldMessages(max_messages=3)
    acked = []

    async def ack(e):
        acked.append(e.message.offset)

    events = angry_events()
    asyncio.run(w.process_batch(events[:2], ack))
    assert puts == [] and acked == []
    asyncio.run(w.process_batch(events[2:], ack))  # 5 held >= 3: written, then all acknowledged
    assert puts == [b"c-1"] and acked == [0, 1, 2, 3, 4]


def test_held_states_are_written_at_once_when_faust_rebalances():
    w, _ = worker()
    _, puts = _recording(w)
    acked = []

    async def ack(e):
        acked.append(e.message.offset)

    w._ack = ack
    events = angry_events()
    asyncio.run(w.process_batch(events, ack))
    asyncio.run(w.flush_if_due())
    assert puts == [] and acked == []  # not due yet: young and few
    w.app.rebalancing = True  # Faust waits for every message in flight to be acknowledged
    asyncio.run(w.flush_if_due())
    assert puts == [b"c-1"] and acked == [e.message.offset for e in events]


def test_a_failed_batch_acknowledges_nothing_held_before_it():
    w, codes = worker()
    _, puts = _recording(w)
    acked = []

    async def ack(e):
        acked.append(e)

    events = angry_events()
    asyncio.run(w.process_batch(events[:3], ack))

    async def undeliverable(key: bytes, value: bytes):
        raise RuntimeError("alerts topic unreachable")

    w.evaluator.send_alert = undeliverable
    with pytest.raises(Exited):
        asyncio.run(w.process_batch(events[3:], ack))
    assert codes == [70] and acked == [] and puts == []


def test_a_rejected_rule_set_is_dead_lettered_with_its_headers_and_the_good_set_kept():
    w, _ = worker()
    dead = []

    async def dead_letter(source, error, call_id):
        dead.append((source, error))
        return asyncio.sleep(0)

    w.feed.on_record.dead_letter = dead_letter
    before = w.rules.current[0].version
    bad = Source("svc.emowatch.rules.v1", 0, 5, b"default", b"\x00garbage", [("published-by", b"ops")])
    asyncio.run(w.feed.on_record(bad))
    [(source, error)] = dead
    assert source is bad and source.headers == [("published-by", b"ops")]
    assert error.stage == "DECODE" and "topic:svc.emowatch.rules.v1@5" in error.reason
    assert w.rules.current[0].version == before and w.metrics.rejected._value.get() == 1


def test_a_rejected_rule_set_whose_dead_letter_fails_is_not_skipped():
    """The failure propagates, so the feed reads the same record again after its back-off."""
    w, _ = worker()

    async def broken(source, error, call_id):
        raise RuntimeError("dlq unreachable")

    w.feed.on_record.dead_letter = broken
    with pytest.raises(RuntimeError, match="dlq unreachable"):
        asyncio.run(w.feed.on_record(Source("r", 0, 1, None, b"x", None)))
