"""Synthetic FrameScores used by the rules-worker tests and benchmark."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.rules.testing import interleave, random_timeline, synthetic_call
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
