"""Windowing on event time: bins and windows equal a direct computation, whatever the chunking."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from emowatch.rules.windows import advance

HOP, FRAME = 200, 20


def reference(logits: np.ndarray, w: int) -> dict[int, np.ndarray]:
    """softmax(mean of frame logits over [t - w*hop, t)) at every bin end t with a full window."""
    per = HOP // FRAME
    out = {}
    for end in range(w * per, len(logits) + 1, per):
        mean = logits[end - w * per:end].mean(axis=0)
        e = np.exp(mean - mean.max())
        out[end * FRAME] = e / e.sum()
    return out


def run(logits: np.ndarray, sizes: list[int], windows: list[int]) -> dict[int, dict[int, np.ndarray]]:
    ring, open_bin, start = [], None, 0
    got: dict[int, dict[int, np.ndarray]] = {w: {} for w in windows}
    for n in sizes:
        r = advance(ring, open_bin, logits[start:start + n], start * FRAME, FRAME, HOP, windows,
                    max(windows), close_tail=False)
        ring, open_bin = r.ring, r.open
        for w in windows:
            for t, ok, p in zip(r.times.tolist(), r.valid[w], r.probs[w]):
                if ok:
                    got[w][t] = p
        start += n
    return got


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=12),
       seed=st.integers(min_value=0, max_value=2**16))
def test_any_chunking_gives_the_direct_windows(sizes: list[int], seed: int) -> None:
    logits = np.random.default_rng(seed).normal(0, 2, size=(sum(sizes), 9))
    got = run(logits, sizes, [1, 5, 15])
    for w in (1, 5, 15):
        want = reference(logits, w)
        assert sorted(got[w]) == sorted(want)
        for t, p in want.items():
            np.testing.assert_allclose(got[w][t], p, atol=1e-4)


def test_state_ring_is_bounded_and_rounded() -> None:
    logits = np.random.default_rng(0).normal(size=(500, 9))
    r = advance([], None, logits, 0, FRAME, HOP, [5], 5, close_tail=False)
    assert len(r.ring) == 4 and r.open is None
    assert all(round(v, 4) == v for row in r.ring for v in row)
    tail = advance([], None, logits[:55], 0, FRAME, HOP, [5], 5, close_tail=False)
    assert tail.open is not None and tail.open[:2] == [5.0, 5.0]
    closed = advance([], None, logits[:55], 0, FRAME, HOP, [5], 5, close_tail=True)
    assert closed.open is None and closed.times.tolist() == [200, 400, 600, 800, 1000]
