"""Synthetic FrameScores used by the rules-worker tests and benchmark."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.rules.testing import interleave, random_timeline, random_turns, synthetic_call
from emowatch.topics.serde import AvroSerde


def test_messages_are_valid_frame_scores_with_the_timeline():
    msgs = synthetic_call("c", [(1500, {"angry": 0.8}), (1000, {"neutral": 0.9})], business_line="vip",
                          attributes={"customer_tier": "vip"})
    assert [(m["seq"], m["start_ms"], m["n_frames"]) for m in msgs] == [(0, 0, 50), (1, 1000, 50), (2, 2000, 25)]
    assert [m["end_of_call"] for m in msgs] == [False, False, True]
    serde = AvroSerde("FrameScores")
    back = serde.decode(serde.encode(msgs[0], topic="t"), topic="t")
    assert back["call_id"] == "c" and back["attributes"] == {"customer_tier": "vip"}
    assert np.argmax(back["chunk_probs"]) == back["labels"].index("angry")
    assert np.argmax(msgs[2]["chunk_probs"]) == msgs[2]["labels"].index("neutral")


def test_noise_is_deterministic_per_seed_and_chunk_must_be_whole_frames():
    a = synthetic_call("c", [(1000, {"sad": 0.7})], noise=0.3, seed=1)
    assert a == synthetic_call("c", [(1000, {"sad": 0.7})], noise=0.3, seed=1)
    assert a != synthetic_call("c", [(1000, {"sad": 0.7})], noise=0.3, seed=2)
    with pytest.raises(ValueError):
        synthetic_call("c", [(1000, {"sad": 0.7})], chunk_ms=30)


def test_random_timeline_covers_the_call_and_interleave_orders_by_offset():
    spans = random_timeline(np.random.default_rng(0), 40)
    assert sum(ms for ms, _ in spans) == 40_000
    calls = [synthetic_call(f"c{i}", [(3000, {"neutral": 0.9})]) for i in range(3)]
    merged = interleave(calls)
    assert [(m["start_ms"], m["call_id"]) for m in merged][:4] == [(0, "c0"), (0, "c1"), (0, "c2"), (1000, "c0")]
    assert len(merged) == 9


def test_speech_goes_with_its_frames_and_must_cover_the_timeline():
    speech = np.linspace(0.0, 1.0, 125)
    msgs = synthetic_call("c", [(2500, {"angry": 0.8})], speech=speech)
    assert [len(m["speech"]) for m in msgs] == [m["n_frames"] for m in msgs] == [50, 50, 25]
    assert np.concatenate([m["speech"] for m in msgs]).tolist() == speech.tolist()
    assert {m["vad"] for m in msgs} == {"synthetic"}
    serde = AvroSerde("FrameScores")
    assert len(serde.decode(serde.encode(msgs[0], topic="t"), topic="t")["speech"]) == 50
    assert "speech" not in synthetic_call("c", [(1000, {"sad": 0.7})])[0]  # without it: no voice activity
    with pytest.raises(ValueError, match="speech"):
        synthetic_call("c", [(1000, {"sad": 0.7})], speech=[1.0] * 49)


def test_random_turns_take_turns_with_some_overlap_and_some_dead_air():
    a = random_turns(np.random.default_rng(3), 120)
    assert all(np.array_equal(x, y) for x, y in zip(a, random_turns(np.random.default_rng(3), 120)))
    customer, agent = (x >= 0.5 for x in a)
    assert customer.shape == agent.shape == (6000,)
    assert all(((x >= 0) & (x <= 1)).all() for x in a)
    assert 0.2 < customer.mean() < 0.7 and 0.2 < agent.mean() < 0.7
    assert 0 < (customer & agent).mean() < 0.1  # overlaps, rare
    silent = ~customer & ~agent
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(int), [0])))))[::2]
    assert runs.max() >= 150  # at least one silence of both of 3 s or more in two minutes
    c2, a2 = (x >= 0.5 for x in random_turns(np.random.default_rng(3), 120, agent_weight=3.0))
    assert a2.sum() / (a2.sum() + c2.sum()) > agent.sum() / (agent.sum() + customer.sum())
