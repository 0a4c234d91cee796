"""Dead letters on real parts: local broker, inference agent (FunASR-loaded demo model), ClickHouse sink.

Valid audio, then malformed messages of every kind the agent can meet, then more valid audio, all
keyed by one call (one partition, so the agent must get past each bad message to reach the next).
Every malformed message must be on the DLQ with stage, a readable reason, the original key, value
and headers and its source topic/partition/offset; every valid chunk must be scored; the group
must commit past all of it. Likewise undecodable scores/alerts reach the DLQ from the ClickHouse
sink while it writes the valid rows around them.
"""
from __future__ import annotations

import re
import time
import urllib.request
import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from emowatch.streams.kafka.clients import group_name, make_producer, topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import demo_model_dir, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.settings import KafkaSettings
from emowatch.topics.examples import example_record
from emowatch.topics.registry import Topics
from emowatch.topics.serde import AvroSerde

pytestmark = pytest.mark.integration
DEADLINE_S = 240
CALL = "dlq-call-A"
OTHER_CALL = "dlq-call-B"
MAX_CHUNK_S = 2.0
NOW_MS = int(time.time() * 1000)  # recent: the sink's tables drop rows older than their TTL


def pcm_s16(seconds: float, rate: int = 16000, seed: int = 0) -> bytes:
    """A quiet tone with a little noise, little-endian int16."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(seed).standard_normal(t.size)
    return (x * 32767).astype("<i2").tobytes()


def chunk(call_id: str, seq: int, **over) -> dict:
    rec = example_record("AudioChunk", call_id=call_id, seq=seq, start_ms=1000 * seq, role="CUSTOMER",
                         sample_rate=16000, encoding="PCM_S16LE", channels=1, audio=pcm_s16(1.0, seed=seq),
                         end_of_call=False, event_time=NOW_MS + 1000 * seq)
    rec.update(over)
    return rec


@dataclass
class Bad:
    """One malformed input: what was sent, and what its dead letter must say."""

    case: str
    key: bytes | None
    value: bytes | None
    reason: str  # substring of the dead letter's reason
    call_id: str | None  # readable from the message (valid Avro) or not
    error_type: str
    headers: list[tuple[str, bytes | None]] = field(init=False)  # order, repeats and a null value
    partition: int = -1  # where it landed (delivery report)
    offset: int = -1

    def __post_init__(self) -> None:
        self.headers = [("case", self.case.encode()), ("traceparent", b"00-4bf92f3577b34da6-00f067aa0ba902b7-01"),
                        ("dup", b"1"), ("dup", b"2"), ("empty", None)]


def malformed_audio(serde: AvroSerde, topic: str) -> list[Bad]:
    def avro(**over) -> bytes:
        return serde.encode(chunk(CALL, 99, **over), topic=topic)

    nan = np.zeros(1600, dtype="<f4")
    nan[100] = np.nan
    frame_scores = AvroSerde("FrameScores").encode(example_record("FrameScores", call_id=CALL), topic=topic)
    whole = avro()
    key = CALL.encode()
    return [
        Bad("random-bytes", key, bytes(np.random.default_rng(7).integers(1, 255, 300, dtype=np.uint8)),
            "unknown framing", None, "SerdeError"),
        Bad("random-bytes-no-key", None, b"\x7fELF" + bytes(range(64)), "unknown framing", None, "SerdeError"),
        Bad("tombstone", key, None, "tombstone", None, "SerdeError"),
        Bad("empty-value", key, b"", "empty message", None, "SerdeError"),
        Bad("truncated-avro", key, whole[: len(whole) // 2], "malformed AudioChunk body", None, "SerdeError"),
        Bad("other-record-type", key, frame_scores, "holds FrameScores", None, "SerdeError"),
        Bad("registry-framing-without-registry", key, b"\x00\x00\x00\x00\x07" + whole[10:], "registry URL", None,
            "SerdeError"),
        Bad("truncated-pcm", key, avro(audio=pcm_s16(0.1)[:-1]), "truncated:", CALL, "AudioError"),
        Bad("nan-samples", key, avro(encoding="PCM_F32LE", audio=nan.tobytes()), "non_finite:", CALL, "AudioError"),
        Bad("empty-audio", key, avro(audio=b""), "empty: audio is empty", CALL, "AudioError"),
        Bad("too-long", key, avro(sample_rate=8000, audio=pcm_s16(MAX_CHUNK_S + 1, rate=8000)), "too_long:", CALL,
            "AudioError"),
        Bad("unsupported-rate", key, avro(sample_rate=12345, audio=pcm_s16(0.1, rate=12345)), "unsupported_rate:",
            CALL, "AudioError"),
        Bad("three-channels", key, avro(channels=3, audio=pcm_s16(0.3)), "unsupported_channels:", CALL,
            "AudioError"),
    ]


@dataclass
class Run:
    topics: Topics
    bad_audio: list[Bad]
    bad_sink: list[Bad]
    valid_audio: list[tuple[str, int]]
    sink_valid_scores: list[tuple[str, int]]
    alert_id: str
    scores: list[dict]
    dead: list[dict]
    dlq_keys: dict[tuple[str, int, int], bytes | None]
    metrics: str
    rows: dict


class Publisher:
    """Produces test inputs and remembers where each one landed (partition, offset)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.producer = make_producer(kafka)
        self.failures: list[str] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers=None, into: Bad | None = None) -> None:
        def delivered(err, msg) -> None:
            if err is not None:
                self.failures.append(str(err))
            elif into is not None:
                into.partition, into.offset = msg.partition(), msg.offset()

        self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=delivered)

    def bad(self, topic: str, bad: Bad) -> None:
        self.send(topic, bad.key, bad.value, bad.headers, into=bad)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0 and not self.failures, self.failures


def read_dlq_keys(kafka: KafkaSettings, topic: str, count: int) -> dict[tuple[str, int, int], bytes | None]:
    """Kafka message key of each DLQ message, by the source position its record names."""
    serde = AvroSerde("DeadLetter")
    consumer = Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"dlq-keys-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(kafka.partitions)])
    out: dict[tuple[str, int, int], bytes | None] = {}
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(out) < count:
            assert time.monotonic() < deadline, f"read {len(out)} of {count} dead letters"
            for msg in consumer.consume(num_messages=100, timeout=0.2):
                if msg.error() is None:
                    rec = serde.decode(msg.value(), topic=topic)
                    out[(rec["source_topic"], rec["source_partition"], rec["source_offset"])] = msg.key()
    finally:
        consumer.close()
    return out


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    data = tmp_path_factory.mktemp("dlq")
    prefix = f"dlq{uuid.uuid4().hex[:8]}."
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir()),
                                                    "EMOWATCH_INFER__MAX_CHUNK_S": str(MAX_CHUNK_S),
                                                    # its calls never end: their context holds go after 1 s idle
                                                    "EMOWATCH_INFER__CONTEXT_HOLD_S": "1"})
        stack.start_worker("sink", ["sink"])
        pub = Publisher(kafka)

        # audio: a valid chunk, every kind of malformed message, more valid chunks (one call -> one partition)
        audio = AvroSerde("AudioChunk")
        valid_audio = [(CALL, 0), (CALL, 1), (CALL, 2), (OTHER_CALL, 0), (OTHER_CALL, 1)]
        bad_audio = malformed_audio(audio, t.audio)
        pub.send(t.audio, CALL.encode(), audio.encode(chunk(CALL, 0), topic=t.audio))
        for bad in bad_audio:
            pub.bad(t.audio, bad)
        for call_id, seq in valid_audio[1:]:
            pub.send(t.audio, call_id.encode(), audio.encode(chunk(call_id, seq), topic=t.audio))

        # sink inputs: valid and undecodable rows interleaved on the scores and alerts topics
        scores, alerts = AvroSerde("FrameScores"), AvroSerde("Alert")
        sink_valid_scores = [("dlq-sink-1", 5), ("dlq-sink-2", 6)]
        alert = example_record("Alert", call_id="dlq-sink-alert", alert_id=f"dlq-{uuid.uuid4().hex[:12]}",
                               event_time=NOW_MS)
        bad_sink = [
            Bad("scores-garbage", b"dlq-sink-1", b'{"not": "avro"}', "cannot write to scores", None, "SerdeError"),
            Bad("scores-with-alert-record", b"dlq-sink-1", alerts.encode(alert, topic=t.scores),
                "cannot write to scores", None, "SerdeError"),
            # valid Avro whose frame arrays do not fit n_frames: stored, they would misalign every frame-level read
            Bad("scores-short-logits", b"dlq-sink-1", scores.encode(example_record(
                "FrameScores", call_id="dlq-sink-1", seq=7, event_time=NOW_MS, logits=[0.5] * 9), topic=t.scores),
                "logits has 9 values", "dlq-sink-1", "ValueError"),
            Bad("scores-speech-length", b"dlq-sink-1", scores.encode(example_record(
                "FrameScores", call_id="dlq-sink-1", seq=8, event_time=NOW_MS, speech=[0.5]), topic=t.scores),
                "speech has 1 values", "dlq-sink-1", "ValueError"),
            Bad("alerts-garbage", b"dlq-sink-alert", b"\xc3\x01" + b"\x00" * 12, "cannot write to alerts", None,
                "SerdeError"),
        ]
        first, second = (scores.encode(example_record("FrameScores", call_id=c, seq=q, event_time=NOW_MS),
                                       topic=t.scores)
                         for c, q in sink_valid_scores)
        pub.send(t.scores, sink_valid_scores[0][0].encode(), first)
        pub.bad(t.scores, bad_sink[0])
        for bad in bad_sink[1:4]:
            pub.bad(t.scores, bad)
        pub.send(t.scores, sink_valid_scores[1][0].encode(), second)
        pub.bad(t.alerts, bad_sink[4])
        pub.send(t.alerts, alert["call_id"].encode(), alerts.encode(alert, topic=t.alerts))
        pub.flush()

        n_bad, n_scores = len(bad_audio) + len(bad_sink), len(valid_audio) + len(sink_valid_scores)
        tail = TopicTail(kafka, {t.scores: "FrameScores", t.dlq: "DeadLetter"})
        got = tail.collect(lambda o: len(o[t.dlq]) >= n_bad and sum(1 for s in o[t.scores] if s) >= n_scores,
                           DEADLINE_S, check=stack.check_workers)
        wait_for_lag_zero(stack, group_name(kafka, "emowatch-infer"), [t.audio], DEADLINE_S)
        wait_for_lag_zero(stack, group_name(kafka, "emowatch-sink"), [t.scores, t.alerts], DEADLINE_S)
        tail.catch_up(got, DEADLINE_S)  # everything scored or dead-lettered by now is in `got`
        tail.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.workers['infer'].http_port}/metrics", timeout=30) as r:
            metrics = r.read().decode()
        stack.stop_worker("sink")  # chDB: one process per data path
        from emowatch.streams.sink.clickhouse import connect

        client = connect(None, data, "emowatch")
        rows = {"scores": client.query("SELECT call_id, seq FROM emowatch.scores FINAL").result_rows,
                "alerts": client.query("SELECT alert_id FROM emowatch.alerts FINAL").result_rows}
        client.close()
        return Run(t, bad_audio, bad_sink, valid_audio, sink_valid_scores, alert["alert_id"], got[t.scores],
                   got[t.dlq], read_dlq_keys(kafka, t.dlq, len(got[t.dlq])), metrics, rows)
    finally:
        stack.stop()


def dead_letter_of(run: Run, topic: str, bad: Bad) -> dict:
    found = [d for d in run.dead if (d["source_topic"], d["source_partition"], d["source_offset"])
             == (topic, bad.partition, bad.offset)]
    assert len(found) == 1, f"{bad.case}: {len(found)} dead letters for {topic}[{bad.partition}]@{bad.offset}"
    return found[0]


def test_every_malformed_audio_message_is_dead_lettered_with_its_original_bytes(run):
    for bad in run.bad_audio:
        d = dead_letter_of(run, run.topics.audio, bad)
        assert d["stage"] == "DECODE", bad.case
        assert bad.reason in d["reason"] and "Traceback" not in d["reason"], (bad.case, d["reason"])
        assert d["error_type"] == bad.error_type, bad.case
        assert d["key"] == bad.key and d["value"] == bad.value, bad.case
        assert d["headers"] == [{"key": k, "value": v} for k, v in bad.headers], bad.case
        assert d["call_id"] == bad.call_id and d["service"] == "emowatch-infer", bad.case
        assert run.dlq_keys[(run.topics.audio, bad.partition, bad.offset)] == bad.key, bad.case
    assert len({b.partition for b in run.bad_audio if b.key is not None}) == 1  # one call -> one partition


def test_the_agent_keeps_going_every_valid_chunk_is_scored(run):
    ours = [s for s in run.scores if s and s["call_id"].startswith("dlq-call")]
    assert sorted((s["call_id"], s["seq"]) for s in ours) == sorted(run.valid_audio)
    assert all(s["n_frames"] == 50 and len(s["logits"]) == 50 * 9 for s in ours)
    # chunks 1 and 2 of the call were queued behind every bad message on its partition, and the bad
    # ones (seq 99 among them) left the call's context alone: no gap is flagged
    assert [s["gap_before"] for s in sorted(ours, key=lambda s: s["seq"]) if s["call_id"] == CALL] == [False] * 3


def test_dead_letter_and_error_metrics_count_the_malformed_messages(run):
    def value(name: str) -> float:
        m = re.search(rf"^{re.escape(name)} (\S+)$", run.metrics, re.M)
        assert m, f"{name} not exported"
        return float(m.group(1))

    assert value("emowatch_infer_dlq_total") == len(run.bad_audio)
    assert value('emowatch_infer_errors_total{stage="decode"}') == len(run.bad_audio)


def test_the_sink_dead_letters_undecodable_rows_and_writes_the_valid_ones(run):
    for bad in run.bad_sink:
        topic = run.topics.alerts if bad.case.startswith("alerts") else run.topics.scores
        d = dead_letter_of(run, topic, bad)
        assert d["stage"] == "SINK" and bad.reason in d["reason"], (bad.case, d["reason"])
        assert d["key"] == bad.key and d["value"] == bad.value and d["service"] == "emowatch-sink", bad.case
        assert d["headers"] == [{"key": k, "value": v} for k, v in bad.headers], bad.case
    misfit = {("dlq-sink-1", 7), ("dlq-sink-1", 8)}  # valid Avro, dead-lettered for their frame arrays
    published = {(s["call_id"], s["seq"]) for s in run.scores if s}
    assert set(run.sink_valid_scores) <= published and misfit <= published
    assert set(run.rows["scores"]) == published - misfit
    assert run.rows["alerts"] == [(run.alert_id,)]


def test_nothing_valid_was_dead_lettered(run):
    assert len(run.dead) == len(run.bad_audio) + len(run.bad_sink)
