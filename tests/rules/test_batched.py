"""step_many (replays) equals step message by message, bit for bit: aligned and unaligned chunks, gaps, ends,
duplicates, malformed messages, sums of two and of three emotions, inhibition across roles."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.rules.batched import step_many
from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.engine import step
from emowatch.rules.errors import ScoresError
from emowatch.rules.loader import parse_ruleset
from emowatch.rules.testing import interleave, random_timeline, synthetic_call
from emowatch.rules.windows import advance, advance_many, decode_ring

RULES = """\
rule_set: batched
business_line: "*"
defaults: {window: 1s, hop: 200ms, role: any}
rules:
  - id: angry
    when: {emotion: angry, above: 0.7}
    for: 1s
    keep_firing_for: 600ms
    cooldown: 3s
  - id: resigned
    when: {sum: [sad, neutral], above: 0.9}
    window: 2s
    for: 1s
  - id: wide-sum
    when: {sum: [sad, fearful, other], above: 0.6}
    window: 600ms
  - id: calm-drop
    when: {emotion: happy, below: 0.05}
    window: 3s
    for: 4s
    priority: low
  - id: break
    when: {sequence: [neutral, fearful, angry], within: 8s, min_prob: 0.5}
    priority: critical
inhibit:
  - source: {priority: critical}
    target: {priority: low}
"""


def _messages(seed: int, calls: int = 16) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        chunk = int(rng.choice([1000, 1000, 500, 260, 2000]))  # aligned to the 200 ms hop, or not
        for role in ("CUSTOMER", "AGENT") if i % 3 == 0 else ("CUSTOMER",):
            msgs = synthetic_call(f"c{i:02d}", random_timeline(rng, 25, episodes=("angry", "fearful", "sad", "happy")),
                                  role=role, chunk_ms=chunk, noise=0.4, seed=seed * 100 + i,
                                  end_of_call=bool(i % 2))
            if i % 5 == 1 and len(msgs) > 6:
                del msgs[4]                      # a lost chunk: the next one is a gap
                msgs[4]["gap_before"] = True
            if i % 7 == 2 and len(msgs) > 3:
                msgs.insert(3, dict(msgs[2]))    # a redelivered chunk: a duplicate seq
            out.append(msgs)
    return interleave(out)


def _one_by_one(crs, messages):
    states, events = {}, {}
    for m in messages:
        try:
            states[m["call_id"]], ev = step(states.get(m["call_id"]), m, crs)
        except ScoresError:
            continue
        events.setdefault(m["call_id"], []).extend(ev)
    return states, events


def _in_waves(crs, messages, chunk=300):
    states, events = {}, {}
    for c0 in range(0, len(messages), chunk):
        waves, depth = [], {}
        for m in messages[c0:c0 + chunk]:
            k = depth[m["call_id"]] = depth.get(m["call_id"], -1) + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(m)
        for wave in waves:
            for m, res in zip(wave, step_many([(states.get(m["call_id"]), m) for m in wave], crs)):
                if isinstance(res, ScoresError):
                    continue
                states[m["call_id"]], ev = res
                events.setdefault(m["call_id"], []).extend(ev)
    return states, events


def _plain(state):
    return {role: {k: (decode_ring(v).tolist() if k == "ring" else v) for k, v in r.items()}
            for role, r in state["r"].items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_step_many_equals_step(seed):
    crs = compile_ruleset(parse_ruleset(RULES, "batched.yaml"))
    messages = _messages(seed)
    bad = dict(messages[10], logits=np.full(450, np.nan, dtype=np.float32), seq=10_000)
    messages.insert(40, bad)
    a_states, a_events = _one_by_one(crs, messages)
    b_states, b_events = _in_waves(crs, messages)
    assert a_events == b_events and sum(map(len, a_events.values())) > 20
    assert {e["rule_id"] for ev in a_events.values() for e in ev} >= {"angry", "resigned", "wide-sum", "calm-drop"}
    assert a_states.keys() == b_states.keys()
    assert all(_plain(a_states[c]) == _plain(b_states[c]) for c in a_states)
    assert any(isinstance(r["ring"], np.ndarray) for s in b_states.values() for r in s["r"].values() if "ring" in r)


def test_advance_many_equals_advance_bit_for_bit():
    rng = np.random.default_rng(5)
    windows, hop, max_bins = (5, 10, 15), 200, 15
    items, rings = [], []
    for i in range(60):
        k = int(rng.choice([0, 3, 14, 14, 14]))
        ring = rng.normal(0, 3, (k, 10)).astype(np.float32)
        ring[:, 0] = 10
        rings.append(ring)
        n = int(rng.choice([50, 50, 13, 0]))
        start = int(rng.integers(0, 50)) * (200 if n != 13 else 20)
        items.append((ring, None, rng.normal(0, 2, (n, 9)), start, 20, bool(i % 2)))
    items.append(("not base64!", None, rng.normal(0, 2, (50, 9)), 0, 20, False))
    items.append(("", None, rng.normal(0, 2, (50, 9)), 0, 20, False))
    groups: list = []
    many = advance_many(items, hop, windows, max_bins, groups)
    assert groups and sum(len(g[0]) for g in groups) < len(items)  # some went through advance itself
    for item, got in zip(items, many):
        try:
            want = advance(*item[:5], hop, windows, max_bins, close_tail=item[5])
        except ScoresError:
            assert isinstance(got, ScoresError)
            continue
        assert np.array_equal(got.times, want.times) and np.array_equal(got.valid, want.valid)
        assert np.array_equal(got.probs, want.probs)  # exactly, not approximately
        assert np.array_equal(decode_ring(got.ring), decode_ring(want.ring)) and got.open == want.open
