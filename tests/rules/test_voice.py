"""The conversation signals computed on the bins' bit masks equal a plain frame-by-frame computation (the overlap
runs, who started them, the roles' run starts) and a plain cumulative sum (the talk windows), exactly; the stateful
tree nodes' shortcuts equal their point-by-point form and leave shared memories alone."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from emowatch.rules.tree import Context, Count, Leaf, Silence, evaluate
from emowatch.rules.voice import BRIDGE_MS, Group, _overlaps, _talk

NAN = float("nan")


def _frame_overlaps(g, bits, hop, frame_ms, times):
    """Reference: frame by frame, running maxima (what the bit-mask form must equal)."""
    k, _, n = bits.shape
    per_bin = hop // frame_ms
    speaking = ((bits[..., None] >> np.arange(per_bin)) & 1).astype(bool).reshape(k, 2, n * per_bin)
    fs = g.first[:, None] * hop + np.arange(n * per_bin) * frame_ms
    fe = fs + frame_ms
    starts = []
    for r in (0, 1):
        s = speaking[:, r]
        prev = np.fmax.accumulate(np.concatenate((g.last_end[:, r:r + 1], np.where(s, fe, NAN)), axis=1),
                                  axis=1)[:, :-1]
        new_run = s & (np.isnan(prev) | (fs - prev > BRIDGE_MS))
        starts.append(np.fmax.accumulate(np.concatenate((g.run_start[:, r:r + 1], np.where(new_run, fs, NAN)),
                                                        axis=1), axis=1)[:, 1:])
    both = speaking[:, 0] & speaking[:, 1]
    ov_ends = np.concatenate((g.overlap[:, 1:2], np.where(both, fe, NAN)), axis=1)
    prev = np.fmax.accumulate(ov_ends, axis=1)[:, :-1]
    new_ov = both & (np.isnan(prev) | (fs - prev > BRIDGE_MS))
    who_at = np.where(starts[0] > starts[1], 1, np.where(starts[1] > starts[0], 2, 0))
    pos = np.maximum.accumulate(np.where(new_ov, np.arange(n * per_bin), -1), axis=1)
    safe = np.maximum(pos, 0)
    run_start = np.where(pos >= 0, np.take_along_axis(fs, safe, axis=1), g.overlap[:, :1])
    run_who = np.where(pos >= 0, np.take_along_axis(who_at, safe, axis=1), g.overlap[:, 2:3])
    run_end = np.fmax.accumulate(ov_ends, axis=1)[:, 1:]
    at = np.arange(1, n + 1) * per_bin - 1
    e, s, w = run_end[:, at], run_start[:, at], run_who[:, at]
    on = ~np.isnan(e) & (times - np.nan_to_num(e, nan=-1e18) <= BRIDGE_MS)
    carried = {"run_start": np.stack([a[:, -1] for a in starts], axis=1),
               "overlap": np.where(on[:, -1:], np.stack((s[:, -1], e[:, -1], w[:, -1]), axis=1), NAN)}
    return (np.where(on, (e - s) / 1000.0, 0.0), on, np.where(on, w, -1)), carried


@pytest.mark.parametrize("seed", range(4))
def test_overlaps_on_bit_masks_equal_frame_by_frame(seed):
    rng = np.random.default_rng(seed)
    for _ in range(400):
        k, n = int(rng.integers(1, 10)), int(rng.integers(1, 12))
        frame_ms = int(rng.choice([10, 20, 20, 25, 40, 100]))
        per_bin = int(rng.choice([1, 2, 5, 10, 20, 60]))
        hop = frame_ms * per_bin
        bits = ((rng.random((k, 2, n, per_bin)) < rng.random()).astype(np.int64) << np.arange(per_bin)).sum(-1)
        first = rng.integers(0, 100, k)
        last_end = (first[:, None] * hop - rng.integers(0, 400, (k, 2))).astype(float)
        last_end[rng.random((k, 2)) < 0.3] = NAN
        run_start = last_end - rng.integers(0, 1000, (k, 2))
        overlap = np.full((k, 3), NAN)
        live = rng.random(k) < 0.5
        end = first * hop - rng.integers(0, 300, k)
        overlap[live] = np.stack((end - rng.integers(0, 500, k), end, rng.integers(0, 3, k)), axis=1)[live]
        g = Group(("CUSTOMER", "AGENT"), first, bits, last_end, run_start, overlap, None, None)
        times = (first[:, None] + np.arange(1, n + 1)) * hop
        got_carried: dict = {}
        got = _overlaps(g, bits, hop, frame_ms, times, got_carried)
        want, want_carried = _frame_overlaps(g, bits, hop, frame_ms, times)
        for a, b in [*zip(got, want), *((got_carried[x], want_carried[x]) for x in want_carried)]:
            assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def test_talk_windows_equal_cumulative_sums():
    rng = np.random.default_rng(7)
    for _ in range(300):
        k, longest, n = int(rng.integers(1, 8)), int(rng.integers(1, 30)), int(rng.integers(1, 40))
        bits = rng.integers(0, 1 << 10, (k, 2, n))
        hist = rng.integers(0, 11, (k, 2, longest)).astype(np.uint8)
        seen = rng.integers(0, longest + 1, k)
        carried: dict = {}
        window = _talk(Group(("CUSTOMER", "AGENT"), np.zeros(k, int), bits, None, None, None, hist, seen), bits,
                       carried)
        allc = np.concatenate((hist.astype(np.int64), np.bitwise_count(bits).astype(np.int64)), axis=2)
        csum = np.concatenate((np.zeros((k, 2, 1), dtype=np.int64), np.cumsum(allc, axis=2)), axis=2)
        ends = longest + np.arange(1, n + 1)
        assert np.array_equal(carried["talk"], allc[..., -longest:])
        assert np.array_equal(carried["talk_seen"], np.minimum(seen + n, longest))
        for w in {1, longest, int(rng.integers(1, longest + 1))}:
            span = csum[..., ends] - csum[..., ends - w]
            for idx in (0, 1):
                mine, total, full = window(w, idx)
                assert np.array_equal(mine, span[:, idx]) and np.array_equal(total, span.sum(axis=1))
                assert np.array_equal(full, (seen[:, None] + np.arange(1, n + 1)) >= w)


def _count_reference(within, times, on, st):
    edges, prev, values = list(st.get("e", [])), bool(st.get("p")), []
    for t, x in zip(times, on):
        if x and not prev:
            edges.append(t)
        prev = x
        while edges and edges[0] <= t - within:
            edges.pop(0)
        values.append(len(edges))
    return values, {key: val for key, val in (("e", edges), ("p", 1 if prev else 0)) if val}


def _silence_reference(node, times, a_on, silent, holds, st):
    last, out = (st or {}).get("a"), []
    for t, a, s, h in zip(times, a_on, silent, holds):
        if a:
            last = t
        out.append(bool(h and last is not None and t - s * 1000.0 - last <= node.within_ms))
    if last is not None and times[-1] - last > node.within_ms + node.min_ms and not out[-1]:
        last = None
    return out, ({} if last is None else {"a": last})


def test_stateful_nodes_equal_their_point_by_point_form_and_copy_shared_memories():
    rng = np.random.default_rng(11)
    count = Count(Leaf(0), 2, 3000, "0")
    silence = Silence("CUSTOMER", 2000, Leaf(0), 1500, "1")
    for _ in range(200):
        k, n = int(rng.integers(1, 9)), int(rng.integers(1, 8))
        first = rng.integers(0, 50, k)
        times = (first[:, None] + np.arange(1, n + 1)) * 200
        on = rng.random((k, n)) < rng.choice([0.0, 0.1, 0.5])
        silent = rng.integers(0, 40, (k, n)) / 10.0
        holds = rng.random((k, n)) < 0.5
        mems = []
        for row in range(k):
            mem = {}
            edges = sorted(int(t) for t in times[row, 0] - rng.integers(0, 5000, int(rng.integers(0, 4))))
            remembered = {key: val for key, val in (("e", edges), ("p", int(rng.random() < 0.3))) if val}
            if remembered:
                mem["0"] = remembered
            if rng.random() < 0.5:
                mem["1"] = {"a": int(times[row, 0] - rng.integers(0, 6000))}
            mems.append(mem)
        shared = copy.deepcopy(mems)

        def leaf(_i, on=on):
            return on.astype(float), on, np.ones(on.shape, dtype=bool)

        def conv(_node, silent=silent, holds=holds):
            return silent, holds, np.ones(holds.shape, dtype=bool)

        ctx = Context(times, leaf, conv, list(mems), [True] * k)
        values, _, _ = evaluate(count, ctx)
        _, out, _ = evaluate(silence, ctx)
        assert mems == shared  # the shared memories were copied before any change
        for row in range(k):
            want_values, want_count = _count_reference(3000, times[row].tolist(), on[row].tolist(),
                                                       mems[row].get("0", {}))
            want_out, want_silence = _silence_reference(silence, times[row].tolist(), on[row].tolist(),
                                                        silent[row].tolist(), holds[row].tolist(), mems[row].get("1"))
            assert values[row].tolist() == want_values and out[row].tolist() == want_out
            assert ctx.mems[row] == {sid: st for sid, st in (("0", want_count), ("1", want_silence)) if st}
