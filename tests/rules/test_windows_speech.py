"""Speech-only, lagged, baseline and class-masked windows equal a direct computation, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emowatch.rules.windows import (
    BASELINE,
    MIN_SPEECH_MS,
    WindowKey,
    advance,
    advance_many,
    decode_ring,
    encode_ring,
    layout,
)

HOP, FRAME = 200, 20
PER = HOP // FRAME


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def direct(logits: np.ndarray, speech: np.ndarray, key: WindowKey, end_frame: int) -> np.ndarray | None:
    """The window ``key`` at the point ending frame ``end_frame``, straight from the frames (None: not valid)."""
    w = key.bins * PER
    if key.lag == BASELINE:
        lo, hi = 0, end_frame - w
        if end_frame < 2 * w:
            return None
    else:
        hi = end_frame - key.lag * PER
        lo = hi - w
        if lo < 0:
            return None
    frames = np.arange(lo, hi)
    if key.speech:
        frames = frames[speech[lo:hi] > 0]
        need = w if key.lag == BASELINE else -(-MIN_SPEECH_MS // FRAME)
        if len(frames) < need:
            return None
    elif key.lag == BASELINE and len(frames) < w:
        return None
    p = softmax(logits[frames].mean(axis=0))
    if key.ignore:
        p[list(key.ignore)] = 0.0
        p = p / p.sum()
    return p


KEYS = (WindowKey(5), WindowKey(5, 0, True), WindowKey(5, 10, True), WindowKey(3, BASELINE, True),
        WindowKey(5, 0, True, (5, 8)), WindowKey(2, 4, False, (8,)))


def run(logits: np.ndarray, speech: np.ndarray, sizes: list[int], keys=KEYS):
    lay = layout(keys)
    max_bins = max(k.span for k in lay.keys)
    ring, open_bin, pre, start = "", None, "", 0
    got: dict[tuple[WindowKey, int], np.ndarray | None] = {}
    for n in sizes:
        r = advance(ring, open_bin, logits[start:start + n], start * FRAME, FRAME, HOP, keys, max_bins,
                    close_tail=False, speech=speech[start:start + n], pre=pre)
        ring, open_bin, pre = r.ring, r.open, r.pre
        for i, key in enumerate(keys):
            for t, ok, p in zip(r.times.tolist(), r.valid[i], r.probs[i]):
                got[(key, t)] = p if ok else None
        start += n
    return got


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=10),
       seed=st.integers(min_value=0, max_value=2**16), talk=st.floats(min_value=0.0, max_value=1.0))
def test_any_chunking_gives_the_direct_windows(sizes: list[int], seed: int, talk: float) -> None:
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    logits = rng.normal(0, 2, size=(n, 9))
    speech = (rng.random(n) < talk).astype(np.float64)
    speech[rng.random(n) < 0.3] = 0.0  # runs of silence
    got = run(logits, speech, sizes)
    points = {t for (_, t) in got}
    assert points == {b * HOP for b in range(1, n // PER + 1)}
    for (key, t), p in got.items():
        want = direct(logits, speech, key, t // FRAME)
        if want is None:
            assert p is None, (key, t)
        else:
            assert p is not None, (key, t)
            np.testing.assert_allclose(p, want, atol=2e-4)


def test_a_silent_window_is_not_valid_and_a_little_speech_is() -> None:
    logits = np.random.default_rng(1).normal(size=(50, 9))
    speech = np.zeros(50)
    key = WindowKey(5, 0, True)
    r = advance("", None, logits, 0, FRAME, HOP, (key,), 5, close_tail=False, speech=speech)
    assert not r.valid.any()
    speech[44:49] = 1.0  # 100 ms of speech in the last window: just enough
    r = advance("", None, logits, 0, FRAME, HOP, (key,), 5, close_tail=False, speech=speech)
    assert r.valid[0].tolist() == [False, False, False, False, True]
    np.testing.assert_allclose(r.probs[0, -1], softmax(logits[44:49].mean(axis=0)), atol=1e-6)
    speech[44] = 0.0  # 80 ms: not enough
    r = advance("", None, logits, 0, FRAME, HOP, (key,), 5, close_tail=False, speech=speech)
    assert not r.valid.any()


def test_without_speech_every_frame_counts_as_before() -> None:
    logits = np.random.default_rng(2).normal(size=(100, 9))
    plain = advance("", None, logits, 0, FRAME, HOP, (5,), 5, close_tail=False)
    speech_key = advance("", None, logits, 0, FRAME, HOP, (WindowKey(5, 0, True),), 5, close_tail=False)
    assert np.array_equal(plain.probs, speech_key.probs) and np.array_equal(plain.valid, speech_key.valid)
    assert plain.ring == speech_key.ring


def test_the_baseline_keeps_the_bins_that_left_the_ring() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(600, 9))
    speech = np.ones(600)
    key = WindowKey(5, BASELINE, True)
    got = run(logits, speech, [50] * 12, keys=(key,))
    for t in (2000, 6000, 12000):
        np.testing.assert_allclose(got[(key, t)], softmax(logits[:t // FRAME - 50].mean(axis=0)), atol=2e-4)
    assert got[(key, 1800)] is None  # less history than the window itself


@pytest.mark.parametrize("with_speech", [False, True])
def test_advance_many_equals_advance_bit_for_bit(with_speech: bool) -> None:
    rng = np.random.default_rng(5)
    keys = KEYS
    lay = layout(keys)
    max_bins = max(k.span for k in keys)
    items, states = [], []
    for i in range(40):
        ring_rows = int(rng.choice([0, 4, max_bins - 1]))
        ring = rng.normal(0, 3, (ring_rows, lay.width)).astype(np.float32)
        ring[:, ::10] = rng.integers(0, 11, (ring_rows, lay.width // 10))
        pre = rng.normal(0, 3, (1, lay.width)).astype(np.float32)
        pre[:, ::10] = 400
        sp = (rng.random(50) < 0.6).astype(np.float64) if with_speech else None
        items.append((ring, None, rng.normal(0, 2, (50, 9)), 200 * int(rng.integers(0, 40)), FRAME, False, sp,
                      encode_ring(pre) if i % 2 else ""))
        states.append(ring)
    groups: list = []
    many = advance_many(items, HOP, keys, max_bins, groups)
    assert groups
    for item, got in zip(items, many):
        want = advance(*item[:5], HOP, keys, max_bins, close_tail=item[5], speech=item[6], pre=item[7])
        assert np.array_equal(got.valid, want.valid) and np.array_equal(got.probs, want.probs)
        assert np.array_equal(decode_ring(got.pre, lay.width), decode_ring(want.pre, lay.width))
