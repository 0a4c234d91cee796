"""Windowing on event time: bins and windows equal a direct computation, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emowatch.rules.windows import advance, decode_ring, encode_ring

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
    ring, open_bin, start = "", None, 0
    got: dict[int, dict[int, np.ndarray]] = {w: {} for w in windows}
    for n in sizes:
        r = advance(ring, open_bin, logits[start:start + n], start * FRAME, FRAME, HOP, windows,
                    max(windows), close_tail=False)
        ring, open_bin = r.ring, r.open
        for i, w in enumerate(windows):
            for t, ok, p in zip(r.times.tolist(), r.valid[i], r.probs[i]):
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


def test_state_ring_is_bounded_and_the_open_bin_rounded() -> None:
    logits = np.random.default_rng(0).normal(size=(500, 9))
    r = advance("", None, logits, 0, FRAME, HOP, [5], 5, close_tail=False)
    ring = decode_ring(r.ring)
    assert ring.shape == (4, 10) and r.open is None
    # the last 4 bins: 10 frames each, sums of their logits (stored as float32)
    want = logits[-40:].reshape(4, 10, 9).sum(axis=1)
    np.testing.assert_allclose(ring[:, 1:], want, rtol=1e-6, atol=1e-5)
    assert ring[:, 0].tolist() == [10.0] * 4
    tail = advance("", None, logits[:55], 0, FRAME, HOP, [5], 5, close_tail=False)
    assert tail.open is not None and tail.open[:2] == [5.0, 5.0]
    assert all(round(v, 4) == v for v in tail.open[2:])
    closed = advance("", None, logits[:55], 0, FRAME, HOP, [5], 5, close_tail=True)
    assert closed.open is None and closed.times.tolist() == [200, 400, 600, 800, 1000]


def test_ring_encoding_round_trips_and_reads_the_v1_lists() -> None:
    rows = np.random.default_rng(1).normal(size=(7, 10))
    back = decode_ring(encode_ring(rows))
    np.testing.assert_array_equal(back, rows.astype(np.float32))
    assert encode_ring(np.zeros((0, 10))) == "" and decode_ring("").shape == (0, 10)
    v1 = np.round(rows, 4).tolist()
    np.testing.assert_array_equal(decode_ring(v1), np.asarray(v1))


def test_a_corrupt_ring_is_a_scores_error() -> None:
    from emowatch.rules.errors import ScoresError

    for bad in ("not base64!", encode_ring(np.ones((1, 10)))[:-8]):
        with pytest.raises(ScoresError, match="corrupt window state"):
            decode_ring(bad)
