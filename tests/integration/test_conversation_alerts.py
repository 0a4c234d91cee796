"""Conversation rules end to end on the local broker (issue #15): a stereo call's two tracks go through the real
inference agent (demo checkpoint, default silero VAD: FrameScores ``speech`` from a real detector) and the real
rules worker with an ``overtalk`` and a ``silence`` rule.

Track layout (call time, 1 s AudioChunks of 16 kHz PCM, one call id, bundled sample speech + digital silence):

* CUSTOMER speaks from the start until :data:`CUSTOMER_END_MS`, then is silent until the end of the call;
* AGENT is silent until :data:`AGENT_START_MS`, when it starts speaking over the customer (an overlap of about
  2 s, the customer's speech unbroken from ~0.8 s before), talks on alone, then is silent too.

The oracle is the pure engine (:func:`emowatch.rules.step`) over the FrameScores the agent actually wrote, in
topic order: the worker's alerts must equal its events exactly. The alert times are also checked against the
layout, so the test fails if the voice activity were ignored; and the same FrameScores fed to the engine in other
interleavings (one role's messages all first) give the same events (the conversation frontier).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from emowatch.rules import load_ruleset, step
from emowatch.streams.audio.chunking import chunk_records, read_wav_mono
from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.kafka.clients import topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.resources import demo_model_dir, samples_dir
from emowatch.topics.model_io import FRAME_MS, SAMPLE_RATE

pytestmark = pytest.mark.integration
TIMEOUT = 240  # deadline of each wait (the test itself takes well under a minute)
CALL_START = 1_700_000_000_000

RULES = """\
rule_set: stereo-test
business_line: "*"
defaults: {window: 1s, hop: 200ms, channels: [webhook]}
rules:
  - id: agent-overtalk
    when: {overtalk: agent, min: 1s}     # both speaking >= 1 s, the agent started the overlap
    role: agent
  - id: customer-silent
    when: {silence: customer, min: 5s}   # customer spoke earlier, then no speech for 5 s
    role: customer
"""
OVERTALK_MIN_MS, SILENCE_MIN_MS, HOP_MS = 1000, 5000, 200
EXPECTED = [("agent-overtalk", "FIRING", "AGENT"), ("agent-overtalk", "RESOLVED", "AGENT"),
            ("customer-silent", "FIRING", "CUSTOMER"), ("customer-silent", "RESOLVED", "CUSTOMER")]

# --- the stereo call -------------------------------------------------------------------------------------------
# Pieces of the bundled samples whose speech the VAD finds unbroken where it matters: calm_01 6.26-8.0 s and
# 8.78-10 s (joined: ~3 s of continuous customer speech, 4.26-7.22 s of the call), escalating_01 4.5-6.26 s
# then 10.84-14 s (the agent: continuous from its start for ~2 s).
CUSTOMER_PIECES = (("calm_01.wav", 2.0, 8.0), ("calm_01.wav", 8.78, 10.0))
AGENT_START_MS = 5000
AGENT_PIECES = (("escalating_01.wav", 4.5, 6.26), ("escalating_01.wav", 10.84, 14.0))
TOTAL_MS = 20_000


def _pieces(pieces: tuple[tuple[str, float, float], ...]) -> np.ndarray:
    out = []
    for name, a, b in pieces:
        x = read_wav_mono(samples_dir() / name)
        out.append(x[round(a * SAMPLE_RATE):round(b * SAMPLE_RATE)])
    return np.concatenate(out)


def _ms(samples: np.ndarray) -> int:
    return len(samples) * 1000 // SAMPLE_RATE


CUSTOMER_END_MS = 7220  # the customer's last audio (the pieces' length); digital silence after it


def _track(lead_ms: int, pieces: tuple[tuple[str, float, float], ...]) -> np.ndarray:
    """``lead_ms`` of digital silence, the pieces, digital silence up to :data:`TOTAL_MS`."""
    x = np.zeros(TOTAL_MS * SAMPLE_RATE // 1000, np.float32)
    speech = _pieces(pieces)
    start = lead_ms * SAMPLE_RATE // 1000
    x[start:start + len(speech)] = speech
    return x


def call_records(call_id: str) -> list[dict]:
    """Both tracks' AudioChunks (1 s each, end_of_call on each track's last), interleaved as live: seq by seq."""
    tracks = [list(chunk_records(_track(lead, pieces), SAMPLE_RATE, call_id=call_id, role=role,
                                 start_time_ms=CALL_START))
              for role, lead, pieces in (("CUSTOMER", 0, CUSTOMER_PIECES), ("AGENT", AGENT_START_MS, AGENT_PIECES))]
    assert [len(t) for t in tracks] == [TOTAL_MS // 1000] * 2 and all(t[-1]["end_of_call"] for t in tracks)
    return [r for pair in zip(*tracks) for r in pair]


# --- oracle ------------------------------------------------------------------------------------------------------

def run_engine(ruleset, messages: list[dict]) -> list[dict]:
    """The pure engine's events over one call's messages, in the given order."""
    state, events = None, []
    for m in messages:
        state, out = step(state, m, ruleset)
        events += out
    return events


def _key(a: dict) -> tuple:
    return (a["alert_id"], a["status"], a["rule_set"], a["rule_id"], a["rule_version"], a["call_id"], a["role"],
            a["started_ms"], a["fired_ms"], a["event_time"], a["value"])


def _speech_ms(scores: list[dict]) -> np.ndarray:
    """Call times (ms, frame starts) of a role's frames the VAD called speech."""
    return np.array([m["start_ms"] + i * m["frame_ms"] for m in scores for i, p in enumerate(m["speech"])
                     if p >= 0.5], dtype=np.int64)


# --- the pipeline, once for the module ------------------------------------------------------------------------

@dataclass
class Run:
    rules_file: Path
    call_id: str
    scores: list[dict]   # the call's FrameScores, in topic order (one partition: the call id is the key)
    alerts: list[dict]   # the call's alerts, in topic order
    dead_letters: list[dict]


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    data = tmp_path_factory.mktemp("conversation")
    rules_file = data / "stereo-test.yaml"
    rules_file.write_text(RULES, encoding="utf-8")
    prefix = f"cv{uuid.uuid4().hex[:8]}."
    call_id = f"conv-{uuid.uuid4().hex[:6]}"
    stack = LocalStack(data_dir=data / "stack", broker=broker, topic_prefix=prefix).start()
    try:
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir())})
        stack.start_worker("rules-all", ["rules", "--business-line", "*", "--rules-file", str(rules_file)])
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        pub = AudioPublisher(kafka)
        for r in call_records(call_id):
            pub.send(r)
        pub.flush()
        seen: dict[str, list[dict]] = {t.scores: [], t.alerts: [], t.dlq: []}

        def keep(topic: str, rec: dict | None) -> None:
            if rec is not None:
                seen[topic].append(rec)

        def mine(topic: str) -> list[dict]:
            return [m for m in seen[topic] if m.get("call_id") == call_id]

        tail = TopicTail(kafka, {t.scores: "FrameScores", t.alerts: "Alert", t.dlq: "DeadLetter"})
        try:
            tail.collect(lambda _: sum(m["end_of_call"] for m in mine(t.scores)) == 2, TIMEOUT, on_record=keep,
                         check=stack.check_workers)
            n_events = len(run_engine(load_ruleset(rules_file), mine(t.scores)))
            tail.collect(lambda _: len(mine(t.alerts)) >= n_events, TIMEOUT, on_record=keep,
                         check=stack.check_workers)
            wait_for_lag_zero(stack, f"{prefix}emowatch-rules-all", [t.scores], TIMEOUT)
            tail.catch_up({topic: [] for topic in seen}, TIMEOUT, on_record=keep)  # anything more it wrote
        finally:
            tail.close()
    finally:
        stack.stop()
    return Run(rules_file, call_id, mine(t.scores), mine(t.alerts), seen[t.dlq])


# --- tests -----------------------------------------------------------------------------------------------------

def _by_role(scores: list[dict], role: str) -> list[dict]:
    return [m for m in scores if m["role"] == role]


def test_the_agent_scored_both_tracks_with_voice_activity_as_laid_out(run):
    assert _ms(_pieces(CUSTOMER_PIECES)) == CUSTOMER_END_MS
    assert not [d for d in run.dead_letters if d.get("call_id") == run.call_id]
    for role in ("CUSTOMER", "AGENT"):
        mine = _by_role(run.scores, role)
        assert [m["seq"] for m in mine] == list(range(TOTAL_MS // 1000)), role
        assert all(m["vad"].startswith("silero-vad ") and len(m["speech"]) == m["n_frames"] == 50 for m in mine)
    customer, agent = (_speech_ms(_by_role(run.scores, r)) for r in ("CUSTOMER", "AGENT"))
    # the VAD follows the tracks: speech only where there is sample speech, none in the digital silence
    assert customer.min() < 1000 and CUSTOMER_END_MS - 300 <= customer.max() < CUSTOMER_END_MS + 300
    assert AGENT_START_MS <= agent.min() < AGENT_START_MS + 300
    assert agent.max() < AGENT_START_MS + _ms(_pieces(AGENT_PIECES)) + 300
    overlap = np.intersect1d(customer, agent)
    assert len(overlap) * FRAME_MS >= 1500  # the agent talks over the customer for well over a second


def test_the_worker_alerts_exactly_as_the_engine_over_the_agents_scores(run):
    oracle = run_engine(load_ruleset(run.rules_file), run.scores)
    assert [(e["rule_id"], e["status"], e["role"]) for e in oracle] == EXPECTED
    assert [_key(a) for a in run.alerts] == [_key(e) for e in oracle]  # ids, statuses, times, values, in order
    # and every other field of the records (the worker adds only the trace id of the scores it came from)
    assert [{k: v for k, v in a.items() if k != "trace_id"} for a in run.alerts] == oracle
    firing, resolved = {}, {}
    for a in run.alerts:
        (firing if a["status"] == "FIRING" else resolved)[a["rule_id"]] = a
    for rid in ("agent-overtalk", "customer-silent"):  # each RESOLVED closes its FIRING's episode
        assert resolved[rid]["alert_id"] == firing[rid]["alert_id"]
        assert resolved[rid]["started_ms"] == firing[rid]["started_ms"] < resolved[rid]["fired_ms"]
        assert firing[rid]["event_time"] == CALL_START + firing[rid]["fired_ms"]


def test_the_alert_times_follow_the_track_layout(run):
    """Bounds from the layout (where the audio is), so ignoring the voice activity would fail them: with every
    frame taken as speech both roles talk from 0 s (no one starts an overlap) and nobody is ever silent."""
    assert [(a["rule_id"], a["status"], a["role"]) for a in run.alerts] == EXPECTED
    fire_ot, resolve_ot, fire_si, resolve_si = run.alerts
    # the overlap starts when the agent starts speaking over the customer; it fires once it has lasted min
    assert AGENT_START_MS <= fire_ot["fired_ms"] - OVERTALK_MIN_MS <= AGENT_START_MS + 500
    assert fire_ot["value"] >= OVERTALK_MIN_MS / 1000
    # ... and ends when the customer stops (the agent talks on)
    assert CUSTOMER_END_MS - 300 <= resolve_ot["fired_ms"] <= CUSTOMER_END_MS + 500
    # the customer's silence fires min after its last speech, exactly at the first evaluation point reaching it
    last_speech_end = int(_speech_ms(_by_role(run.scores, "CUSTOMER")).max()) + FRAME_MS
    assert CUSTOMER_END_MS - 300 <= last_speech_end <= CUSTOMER_END_MS + 300
    assert fire_si["fired_ms"] == -(-(last_speech_end + SILENCE_MIN_MS) // HOP_MS) * HOP_MS
    assert fire_si["value"] == pytest.approx((fire_si["fired_ms"] - last_speech_end) / 1000)
    # the customer never speaks again: resolved at the end of the call
    assert resolve_si["fired_ms"] == TOTAL_MS
    # control: the same FrameScores without voice activity (every frame then counts as speech) give no alert
    assert run_engine(load_ruleset(run.rules_file), [{**m, "speech": None} for m in run.scores]) == []


def test_the_events_do_not_depend_on_the_roles_interleaving(run):
    rs = load_ruleset(run.rules_file)
    in_topic_order = run_engine(rs, run.scores)
    customer, agent = _by_role(run.scores, "CUSTOMER"), _by_role(run.scores, "AGENT")
    rng = np.random.default_rng(15)
    picks = rng.permutation([0] * len(customer) + [1] * len(agent)).tolist()  # random merge, each role in order
    queues = [list(customer), list(agent)]
    shuffled = [queues[k].pop(0) for k in picks]
    # each role's track first, but its end after the other's start (a track that ends before the other one starts
    # ends the call: the other track never came, as far as the conversation rules can tell)
    for name, order in (("customer first", customer[:-1] + agent + customer[-1:]),
                        ("agent first", agent[:-1] + customer + agent[-1:]),
                        ("agent leads", [m for pair in zip(agent, customer) for m in pair]),
                        ("random merge", shuffled)):
        assert run_engine(rs, order) == in_topic_order, name

