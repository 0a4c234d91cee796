"""models/timeline.py: the vectorised step means and run detection give exactly what the straightforward
loops gave (bit for bit), for step counts that divide the frames and ones that leave a shorter last step."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.models.timeline import segments, softmax, step_probs


def _step_probs_loop(lg: np.ndarray, per: int) -> np.ndarray:
    lg = np.asarray(lg, dtype=np.float32)
    return softmax(np.stack([lg[i:i + per].mean(axis=0) for i in range(0, len(lg), per)]))


def _runs_loop(top: np.ndarray) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, k in enumerate(top):
        if runs and runs[-1][0] == k:
            runs[-1][2] = i
        else:
            runs.append([int(k), i, i])
    return runs


@pytest.mark.parametrize("frames", [1, 9, 10, 11, 50, 137, 18_003])
def test_step_probs_equals_the_per_step_loop(frames):
    lg = np.random.default_rng(frames).normal(0, 3, (frames, 9)).astype(np.float32)
    got = step_probs(lg)
    assert got.shape == (-(-frames // 10), 9)
    assert np.array_equal(got, _step_probs_loop(lg, 10))
    assert np.array_equal(step_probs(lg, step_ms=40), _step_probs_loop(lg, 2))


@pytest.mark.parametrize("seed", range(5))
def test_segments_runs_equal_the_per_step_loop(seed):
    rng = np.random.default_rng(seed)
    probs = softmax(rng.normal(0, 1, (500, 9)) + np.repeat(rng.normal(0, 2, (25, 9)), 20, axis=0))
    segs = segments(probs, min_steps=1)  # min_steps=1: no merging, segments are the runs themselves
    runs = _runs_loop(probs.argmax(axis=1))
    assert [(s.start_ms, s.end_ms) for s in segs] == [(a * 200, (b + 1) * 200) for _, a, b in runs]
    assert len(runs) > 25  # the data has flicker: the run detection is exercised
    merged = segments(probs)
    assert merged[0].start_ms == 0 and merged[-1].end_ms == 500 * 200 and len(merged) <= len(segs)
