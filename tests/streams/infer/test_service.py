"""The inference agent's loop with in-memory fakes for the consumer, producer and model:
backpressure (pause/resume), commits of the delivered prefix only, held chunks left
uncommitted, the revoke path and the SIGTERM path. No broker, no torch."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from emowatch.models.engine import ItemError, Result
from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.streams.infer import service as infer_service
from emowatch.streams.settings import InferSettings, KafkaSettings, Settings
from emowatch.topics.serde import AvroSerde

TOPIC = "emowatch.audio.v1"


class Msg:
    def __init__(self, partition, offset, value, key=b"k"):
        self._p, self._o, self._v, self._k = partition, offset, value, key

    def topic(self): return TOPIC
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def key(self): return self._k
    def headers(self): return []
    def error(self): return None
    def timestamp(self): return (1, 0)


class TP:
    def __init__(self, topic, partition, offset=-1001):
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeConsumer:
    def __init__(self):
        self.queue: list[Msg] = []
        self.commits: list[tuple[dict, bool]] = []
        self.paused: set[int] = set()
        self.parts = [TP(TOPIC, 0), TP(TOPIC, 1)]
        self.closed = False
        self.on_empty = None

    def subscribe(self, topics, on_assign=None, on_revoke=None, on_lost=None):
        self.on_revoke = on_revoke
        on_assign(self, self.parts)

    def consume(self, num_messages=1, timeout=0):
        live = [m for m in self.queue if m.partition() not in self.paused]
        out = live[:num_messages]
        for m in out:
            self.queue.remove(m)
        if not out and not self.queue and self.on_empty:
            self.on_empty()
        return out

    def assignment(self): return list(self.parts)
    def pause(self, parts): self.paused |= {p.partition for p in parts}
    def resume(self, parts): self.paused -= {p.partition for p in parts}

    def commit(self, offsets, asynchronous=True):
        self.commits.append(({o.partition: o.offset for o in offsets}, asynchronous))

    def committed_position(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for positions, _ in self.commits:
            out.update(positions)
        return out

    def get_watermark_offsets(self, tp, cached=True): return (0, 100)
    def position(self, tps): return [TP(t.topic, t.partition, 0) for t in tps]

    def close(self):
        self.closed = True
        self.on_revoke(self, self.parts)


class FakeProducer:
    """Keeps delivery callbacks until ``deliver()`` (or flush) acknowledges them."""

    def __init__(self):
        self.pending, self.sent = [], []
        self.auto = True

    def produce(self, topic, key=None, value=None, on_delivery=None):
        self.pending.append((topic, key, value, on_delivery))

    def deliver(self):
        while self.pending:
            topic, key, value, cb = self.pending.pop(0)
            self.sent.append((topic, key, value))
            cb(None, None)

    def poll(self, timeout=0):
        if self.auto:
            self.deliver()
        return 0

    def flush(self, timeout=0):
        self.deliver()
        return 0


class FakeEngine:
    def __init__(self, gate: threading.Event | None):
        self.gate, self.batches = gate, []

    def infer_batch(self, windows):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(len(windows))
        out = []
        for w in windows:
            if w.emit_samples < 320:
                out.append(ItemError(w.key, "too_short", "no frame"))
            else:
                n = w.emit_samples // 320
                out.append(Result(w.key, np.zeros((n, 9), np.float32), np.full(9, 1 / 9, np.float32)))
        return out


class FakeModel:
    name, version, frame_ms, device = "fake", "1", 20, "cpu"
    labels = ["angry", "disgusted", "fearful", "happy", "neutral", "other", "sad", "surprised", "unknown"]

    def __init__(self, gate=None):
        self.eng = FakeEngine(gate)

    def engine(self, **opts):
        return self.eng


SERDE = AvroSerde("AudioChunk")
SCORES = AvroSerde("FrameScores")


def chunk(call, seq, *, samples=16000, end=False):
    rec = {"call_id": call, "role": "CUSTOMER", "seq": seq, "start_ms": seq * 1000, "event_time": 0,
           "sample_rate": 16000, "encoding": "PCM_S16LE", "channels": 1,
           "audio": encode_pcm_s16le(np.full(samples, 0.1, np.float32)), "business_line": "b",
           "end_of_call": end, "attributes": {}}
    return SERDE.encode(rec, topic=TOPIC)


@pytest.fixture
def make_service(monkeypatch):
    def make(gate=None, threaded=False, **infer):
        consumer, producer = FakeConsumer(), FakeProducer()
        monkeypatch.setattr(infer_service, "make_consumer", lambda *a, **k: consumer)
        monkeypatch.setattr(infer_service, "make_producer", lambda *a, **k: producer)
        settings = Settings(kafka=KafkaSettings(bootstrap_servers="fake:9092"),
                            infer=InferSettings(**{"max_wait_ms": 0, "http_port": 0, **infer}))
        svc = infer_service.InferenceAgent(settings, model=FakeModel(gate), threaded=threaded)
        svc.consumer.subscribe([TOPIC], on_assign=svc._on_assign, on_revoke=svc._on_revoke)
        return svc, consumer, producer
    return make


def scored(producer):
    return [(r["call_id"], r["seq"]) for r in
            (SCORES.decode(v, topic="s") for t, _k, v in producer.sent if t.endswith("scores.v1"))]


def iterate_until(svc, cond, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        svc._iterate()
    raise AssertionError("condition not reached")


def test_full_batcher_pauses_partitions_and_resumes_when_drained(make_service):
    gate = threading.Event()
    svc, consumer, producer = make_service(gate, threaded=True, queue_size=8, max_batch=4)
    consumer.queue = [Msg(i % 2, i // 2, chunk(f"c{i}", 0)) for i in range(20)]
    iterate_until(svc, lambda: svc.paused)  # the model is blocked: the queue fills up
    assert consumer.paused == {0, 1} and len(svc.batcher) >= svc.batcher.capacity - 1
    assert len(consumer.queue) > 0  # not consumed while paused
    gate.set()
    iterate_until(svc, lambda: not consumer.queue and svc.tracker.in_flight() == 0)
    assert not svc.paused and consumer.paused == set()
    assert sorted(scored(producer)) == sorted((f"c{i}", 0) for i in range(20))
    assert max(svc.model.eng.batches) <= 4


def test_commits_only_the_delivered_prefix_and_keeps_held_chunks_uncommitted(make_service):
    svc, consumer, producer = make_service(context_hold_s=0)  # no context holds: the delivered prefix alone
    producer.auto = False
    consumer.queue = [Msg(0, 0, chunk("a", 0)), Msg(0, 1, chunk("a", 2)), Msg(0, 2, chunk("b", 0))]
    iterate_until(svc, lambda: not consumer.queue and not svc.runner.busy and len(producer.pending) == 2)
    svc._commit(sync=True)
    assert consumer.committed_position().get(0, 0) == 0  # nothing acknowledged yet
    producer.deliver()
    svc._commit(sync=True)
    assert consumer.committed_position() == {0: 1}  # offset 1 (seq 2, held for seq 1) blocks the prefix
    producer.auto = True
    consumer.queue = [Msg(0, 3, chunk("a", 1))]  # the missing seq: releases the held seq 2
    iterate_until(svc, lambda: not consumer.queue and not svc.runner.busy and not svc.batcher
                  and svc.tracker.in_flight() == 0)
    svc._commit(sync=True)
    assert consumer.committed_position() == {0: 4}
    assert [s for s in scored(producer) if s[0] == "a"] == [("a", 0), ("a", 1), ("a", 2)]


def test_per_item_infer_errors_are_dead_lettered_and_committed(make_service):
    svc, consumer, producer = make_service(context_hold_s=0)
    consumer.queue = [Msg(0, 0, chunk("a", 0)), Msg(0, 1, chunk("a", 1, samples=100)), Msg(0, 2, b"junk")]
    iterate_until(svc, lambda: not consumer.queue and svc.tracker.in_flight() == 0 and not svc.batcher
                  and not svc.runner.busy)
    dlq = [AvroSerde("DeadLetter").decode(v, topic="d") for t, _k, v in producer.sent if t.endswith("dlq.v1")]
    assert sorted((d["stage"], d["source_offset"]) for d in dlq) == [("DECODE", 2), ("INFER", 1)]
    assert [d["reason"].split(":")[0] for d in dlq if d["stage"] == "INFER"] == ["too_short"]
    svc._commit(sync=True)
    assert consumer.committed_position() == {0: 3} and scored(producer) == [("a", 0)]


def test_revoke_drains_delivers_commits_synchronously_and_drops_state(make_service):
    svc, consumer, producer = make_service(max_wait_ms=10_000, max_batch=64)  # nothing is due on its own
    producer.auto = False
    consumer.queue = [Msg(0, i, chunk("a", i)) for i in range(3)] + [Msg(1, 0, chunk("b", 0))]
    svc._iterate()
    assert len(svc.batcher) == 4 and not producer.sent
    svc._on_revoke(consumer, [TP(TOPIC, 0)])
    assert sorted(scored(producer)) == [("a", 0), ("a", 1), ("a", 2), ("b", 0)]
    positions, asynchronous = consumer.commits[-1]
    # the revoked partition is committed exactly (its calls' context holds released: the new owner starts
    # without context); b's input on the partition kept stays held as b's left context
    assert positions[0] == 3 and positions.get(1, 0) == 0 and asynchronous is False
    assert [k for k in svc.ctx.contexts] == [("b", "CUSTOMER")] and svc.assigned == {(TOPIC, 1)}


def test_a_live_calls_left_context_stays_uncommitted_until_covered_ended_or_idle(make_service):
    svc, consumer, producer = make_service()  # context_s 2 s, context_hold_s 10 s
    consumer.queue = [Msg(0, i, chunk("a", i)) for i in range(4)] + [Msg(1, 0, chunk("b", 0)),
                                                                      Msg(1, 1, chunk("b", 1, end=True))]
    iterate_until(svc, lambda: not consumer.queue and not svc.runner.busy and not svc.batcher
                  and svc.tracker.in_flight() == 0)
    svc._commit(sync=True)
    # a's last 2 s (offsets 2, 3) stay held: a restart reads them again and scores the next chunk with the
    # whole context; b ended and was delivered, so nothing of it is held
    assert consumer.committed_position() == {0: 2, 1: 2}
    assert svc.tracker.holds() == 2 and svc.tracker.in_flight() == 0
    svc._housekeeping(time.monotonic())
    assert svc.health()["inputs_held_for_context"] == 2
    consumer.queue = [Msg(0, 4, chunk("a", 4))]
    iterate_until(svc, lambda: not consumer.queue and not svc.runner.busy and not svc.batcher
                  and svc.tracker.in_flight() == 0)
    svc._commit(sync=True)
    assert consumer.committed_position()[0] == 3  # the context moved on by one chunk
    svc._housekeeping(time.monotonic() + 11)  # 10 s without a chunk of a: released
    svc._commit(sync=True)
    assert consumer.committed_position()[0] == 5 and svc.tracker.holds() == 0


def test_sigterm_path_drains_delivers_commits_and_closes(make_service):
    svc, consumer, producer = make_service(max_wait_ms=10_000, max_batch=64)
    producer.auto = False
    consumer.queue = [Msg(0, i, chunk("a", i, end=i == 4)) for i in range(5)]
    consumer.on_empty = svc.stop_event.set  # "SIGTERM" as soon as everything was consumed
    t = threading.Thread(target=svc.run)  # not the main thread: run() installs no signal handlers there
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert scored(producer) == [("a", i) for i in range(5)] and consumer.closed
    assert consumer.committed_position() == {0: 5}
    assert any(not asynchronous for _, asynchronous in consumer.commits)


def test_health_fails_while_outputs_wait_for_delivery_reports_and_recovers(make_service):
    svc, consumer, producer = make_service(delivery_stall_s=0.2)
    producer.auto = False  # the broker answers nothing (e.g. it lost the producer id this agent uses)
    consumer.queue = [Msg(0, 0, chunk("a", 0))]
    iterate_until(svc, lambda: not consumer.queue and not svc.runner.busy and producer.pending)
    assert svc.health()["status"] == "ok"
    deadline = time.monotonic() + 10
    while svc.health()["status"] == "ok" and time.monotonic() < deadline:
        svc._iterate()
    health = svc.health()
    assert health["status"] == "failing" and any("no delivery report" in p for p in health["problems"]), health
    producer.deliver()
    assert svc.health()["status"] == "ok"
    svc._housekeeping(time.monotonic() + 100)  # idle later: nothing in flight, nothing waits
    assert svc.health()["status"] == "ok"
