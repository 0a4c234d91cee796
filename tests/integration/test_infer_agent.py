"""The inference agent on the real local broker, one agent process for the module
(demo model, stereo roles configured as left=AGENT, right=CUSTOMER).

Ordering (out of order + duplicates), stereo split, per-item INFER errors mixed with
decode errors in one stream, /health and /metrics.
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict

import numpy as np
import pytest

from emowatch.streams.audio.chunking import chunk_records, read_wav
from emowatch.streams.audio.codec import encode_pcm_s16le
from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import demo_model_dir, samples_dir
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.settings import KafkaSettings

pytestmark = pytest.mark.integration
DEADLINE = 240


class Agent:
    def __init__(self, stack: LocalStack, kafka: KafkaSettings):
        self.stack, self.kafka, self.topics = stack, kafka, topics_for(kafka)
        self.pub = AudioPublisher(kafka)
        self.tail = TopicTail(kafka, {self.topics.scores: "FrameScores", self.topics.dlq: "DeadLetter"})
        self.got: dict[str, list] = {self.topics.scores: [], self.topics.dlq: []}

    def send(self, records: list[dict]) -> None:
        for r in records:
            self.pub.send(r)
        self.pub.flush()

    def wait_for(self, cond) -> None:
        """Poll the scores and DLQ topics until ``cond(scores, dead_letters)`` holds."""
        def until(out):
            for t in out:
                self.got[t] += out[t]
                out[t].clear()
            return cond(self.scores, self.dlq)
        self.tail.collect(until, DEADLINE, check=self.stack.check_workers)

    @property
    def scores(self) -> list[dict]:
        return self.got[self.topics.scores]

    @property
    def dlq(self) -> list[dict]:
        return self.got[self.topics.dlq]

    def scores_of(self, call_id: str) -> list[dict]:
        return [s for s in self.scores if s["call_id"] == call_id]


@pytest.fixture(scope="module")
def agent(broker, tmp_path_factory):
    prefix = f"ia{uuid.uuid4().hex[:8]}."
    stack = LocalStack(data_dir=tmp_path_factory.mktemp("infer-agent"), broker=broker, topic_prefix=prefix).start()
    try:
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir()),
                                                    "EMOWATCH_INFER__STEREO_ROLES": "AGENT,CUSTOMER"})
        kafka = stack.kafka_settings()
        a = Agent(stack, kafka)
        yield a
        a.tail.close()
    finally:
        stack.stop()


def wav_records(name: str, call_id: str, *, role: str = "CUSTOMER", seconds: int | None = None) -> list[dict]:
    samples, rate = read_wav(samples_dir() / name)
    if seconds is not None:
        samples = samples[: seconds * rate]
    return list(chunk_records(samples, rate, call_id=call_id, role=role, start_time_ms=1_700_000_000_000))


def test_out_of_order_and_duplicated_chunks_are_scored_once_each_in_seq_order(agent):
    u = uuid.uuid4().hex[:6]
    shuffled, reference = wav_records("escalating_01.wav", f"ooo-{u}"), wav_records("escalating_01.wav", f"ref-{u}")
    n = len(shuffled)
    order = [1, 0, 2, 4, 3, 3, 5, 7, 6, 0, 8, 10, 9, 5, 11, 13, 12, 13] + list(range(14, n))
    assert sorted(set(order)) == list(range(n))
    agent.send([shuffled[i] for i in order] + reference)
    agent.wait_for(lambda s, d: sum(x["call_id"] == f"ref-{u}" for x in s) >= n
                   and any(x["call_id"] == f"ooo-{u}" and x["end_of_call"] for x in s))  # the last one sent
    got = agent.scores_of(f"ooo-{u}")
    assert [s["seq"] for s in got] == list(range(n))  # once each, published in seq order
    assert not any(s["gap_before"] for s in got)
    # reordering kept the left context: identical scores to the same call sent in order
    ref = {s["seq"]: s for s in agent.scores_of(f"ref-{u}")}
    for s in got:
        np.testing.assert_allclose(s["chunk_probs"], ref[s["seq"]]["chunk_probs"], atol=1e-5)
        assert s["start_ms"] == ref[s["seq"]]["start_ms"] and s["end_of_call"] == (s["seq"] == n - 1)
        # voice activity (FrameScores v3): one value per frame, bit for bit the in-order call's, whatever
        # the arrival order and the batches each chunk was scored in
        assert len(s["speech"]) == len(s["energy_db"]) == s["n_frames"] == 50
        assert s["vad"].startswith("silero-vad ") and s["vad"] == ref[s["seq"]]["vad"]
        assert (s["speech"], s["energy_db"]) == (ref[s["seq"]]["speech"], ref[s["seq"]]["energy_db"])
        assert all(0.0 <= p <= 1.0 for p in s["speech"]) and min(s["energy_db"]) >= -100.0
    assert np.mean([p for s in got for p in s["speech"]]) > 0.5  # escalating_01 is speech


def stereo_records(call_id: str, left: np.ndarray, right: np.ndarray, seconds: int) -> list[dict]:
    inter = np.stack([left[: seconds * 16000], right[: seconds * 16000]], axis=1)
    return list(chunk_records(inter, 16000, call_id=call_id, role="MIXED", start_time_ms=1_700_000_000_000))


def test_a_stereo_call_yields_two_roles_from_the_configured_channels(agent):
    u = uuid.uuid4().hex[:6]
    left, _ = read_wav(samples_dir() / "agitated_01.wav")
    right, _ = read_wav(samples_dir() / "calm_01.wav")
    left, right = left[:, 0], right[:, 0]
    stereo = stereo_records(f"st-{u}", left, right, 4)
    mono_left = list(chunk_records(left[: 4 * 16000], 16000, call_id=f"ml-{u}", role="AGENT", start_time_ms=0))
    mono_right = list(chunk_records(right[: 4 * 16000], 16000, call_id=f"mr-{u}", role="CUSTOMER", start_time_ms=0))
    agent.send(stereo + mono_left + mono_right)
    agent.wait_for(lambda s, d: sum(x["call_id"].endswith(u) for x in s) >= 16)
    got = agent.scores_of(f"st-{u}")
    by_role = defaultdict(list)
    for s in got:
        by_role[s["role"]].append(s["seq"])
    assert dict(by_role) == {"AGENT": [0, 1, 2, 3], "CUSTOMER": [0, 1, 2, 3]}
    # left channel -> AGENT (as configured): same scores as the left signal sent as a mono AGENT call
    for role, mono in (("AGENT", f"ml-{u}"), ("CUSTOMER", f"mr-{u}")):
        ref = {s["seq"]: s["chunk_probs"] for s in agent.scores_of(mono)}
        for s in got:
            if s["role"] == role:
                np.testing.assert_allclose(s["chunk_probs"], ref[s["seq"]], atol=1e-5)
    assert not np.allclose(agent.scores_of(f"ml-{u}")[0]["chunk_probs"], agent.scores_of(f"mr-{u}")[0]["chunk_probs"])


def test_mixed_valid_and_invalid_chunks_score_the_valid_and_dead_letter_the_rest(agent):
    """Per-item INFER errors (chunks too short for one frame) land in the same model batches as
    valid windows of other calls, interleaved with chunks that fail decoding; the agent scores the
    valid ones, dead-letters each bad one with its stage and reason, and keeps going."""
    u = uuid.uuid4().hex[:6]
    calls = [wav_records(name, f"mx{i}-{u}", seconds=4)
             for i, name in enumerate(("calm_01.wav", "agitated_01.wav", "sad_01.wav"))]
    expected_dlq: dict[tuple[str, int], tuple[str, str]] = {}
    sent: list[dict] = []
    for seq in range(4):
        for i, recs in enumerate(calls):
            r = dict(recs[seq])
            if (i, seq) == (0, 1):
                r["audio"] = encode_pcm_s16le(np.zeros(160, np.float32))  # 10 ms: no 20 ms frame -> INFER
                expected_dlq[(r["call_id"], seq)] = ("INFER", "too_short")
            elif (i, seq) == (1, 2):
                r["audio"] = encode_pcm_s16le(np.zeros(80, np.float32))
                expected_dlq[(r["call_id"], seq)] = ("INFER", "too_short")
            elif (i, seq) == (2, 1):
                r["encoding"], r["audio"] = "PCM_F32LE", np.array([0.1, np.nan] * 800, "<f4").tobytes()
                expected_dlq[(r["call_id"], seq)] = ("DECODE", "non_finite")
            elif (i, seq) == (2, 2):
                r["audio"] = b""
                expected_dlq[(r["call_id"], seq)] = ("DECODE", "empty")
            elif (i, seq) == (0, 3):
                r["sample_rate"] = 12345
                expected_dlq[(r["call_id"], seq)] = ("DECODE", "unsupported_rate")
            sent.append(r)
    garbage_key = f"junk-{u}".encode()
    agent.send(sent)
    agent.pub.send_raw(garbage_key, b"not avro at all")
    agent.pub.flush()
    valid = {(r["call_id"], r["seq"]) for r in sent} - set(expected_dlq)

    def mine(d):
        return [x for x in d if x is not None and ((x["call_id"] or "").endswith(u) or x["key"] == garbage_key)]

    agent.wait_for(lambda s, d: {(x["call_id"], x["seq"]) for x in s} >= valid and len(mine(d)) >= 6)
    scored = Counter((x["call_id"], x["seq"]) for x in agent.scores if x["call_id"].endswith(u))
    assert set(scored) == valid and set(scored.values()) == {1}
    letters = mine(agent.dlq)
    by_call = {}
    for x in letters:
        if x["key"] == garbage_key:
            assert x["stage"] == "DECODE" and x["source_topic"] == agent.topics.audio
            continue
        rec = agent_decode(agent, x["value"])
        by_call[(x["call_id"], rec["seq"])] = (x["stage"], x["reason"].split(":")[0])
        assert x["source_topic"] == agent.topics.audio and x["source_offset"] >= 0
    assert by_call == expected_dlq
    assert sum(x["key"] == garbage_key for x in letters) == 1


def agent_decode(agent: Agent, value: bytes) -> dict:
    """The original AudioChunk bytes kept in a dead letter decode to the chunk that failed."""
    from emowatch.streams.kafka.clients import serde_for

    return serde_for(agent.kafka, "AudioChunk").decode(value, topic=agent.topics.audio)


def get_json(url: str) -> dict:
    try:
        return json.loads(urllib.request.urlopen(url, timeout=10).read())
    except urllib.error.HTTPError as exc:  # 503 still carries the JSON body
        return json.loads(exc.read())


def test_health_and_metrics_report_the_agent_state(agent):
    u = uuid.uuid4().hex[:6]
    agent.send(wav_records("quiet_01.wav", f"h-{u}", seconds=3))
    agent.wait_for(lambda s, d: sum(x["call_id"] == f"h-{u}" for x in s) >= 3)
    url = f"http://127.0.0.1:{agent.stack.workers['infer'].http_port}/health"
    deadline = time.monotonic() + DEADLINE
    while True:  # the snapshot is refreshed every second; lag reaches 0 once everything is committed
        health = get_json(url)
        if health.get("consumer_lag") == 0 and health.get("scored", 0) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert health["status"] == "ok" and health["problems"] == [], health
    assert health["consumer_lag"] == 0 and health["inputs_in_flight"] == 0 and health["queued"] == 0
    assert health["model"]["name"] and health["group"] == "emowatch-infer"
    assert health["model"]["vad"].startswith("silero-vad ")  # the default detector
    assert max(p for x in agent.scores_of(f"h-{u}") for p in x["speech"]) < 0.5  # quiet_01: no speech
    assert health["partitions"] == [0, 1, 2, 3] and health["received"] >= 3 and health["scored"] >= 3
    metrics = urllib.request.urlopen(health_url_metrics(url), timeout=10).read().decode()
    for name in ("emowatch_infer_received_total", "emowatch_infer_scored_total", "emowatch_infer_dlq_total",
                 "# TYPE emowatch_infer_discarded_total counter", "# TYPE emowatch_infer_errors_total counter",
                 "emowatch_infer_batch_size_bucket", "emowatch_infer_queue_delay_seconds_bucket",
                 "emowatch_infer_model_seconds_bucket", "emowatch_infer_real_time_factor",
                 "emowatch_infer_consumer_lag 0.0", "emowatch_infer_bytes_per_call", "emowatch_infer_latency_seconds",
                 "emowatch_infer_vad_seconds", "emowatch_infer_vad_failures 0.0"):
        assert name in metrics, name


def health_url_metrics(health_url: str) -> str:
    return health_url.replace("/health", "/metrics")
