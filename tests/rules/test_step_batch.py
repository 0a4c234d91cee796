"""The rules worker's column-wise evaluation (``step_batch``) equals ``step`` one message after the other: per
message the same events (same order) or the same error, and the same stored states, byte for byte as JSON -
over randomized calls (aligned and unaligned chunks, gaps, duplicates, late messages, ends of call, attribute
changes, three roles, malformed messages), random batch sizes, states reloaded from JSON between batches
(table recovery) and a rule-set reload mid-stream."""
from __future__ import annotations

import json

import numpy as np
import pytest
from batches import both_ways, one_by_one

from emowatch.rules.batched import MIN_WAVE, step_batch, step_many, stored_form
from emowatch.rules.compiler import SEQUENCE, compile_ruleset
from emowatch.rules.engine import step
from emowatch.rules.errors import ScoresError
from emowatch.rules.lifecycle import NO_STEP, observe_sequence, progress_many
from emowatch.rules.loader import parse_ruleset
from emowatch.rules.testing import interleave, random_timeline, synthetic_call

RULES = """\
rule_set: columns
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
  - id: calm-drop
    when: {emotion: happy, below: 0.05}
    window: 3s
    for: 4s
    priority: low
  - id: gold-fear
    when: {emotion: fearful, above: 0.5}
    attributes: {tier: gold}
    for: 400ms
  - id: break
    when: {sequence: [neutral, fearful, angry], within: 8s, min_prob: 0.5}
    priority: critical
  - id: relapse
    when: {sequence: [angry, neutral, angry], within: 6s, min_prob: 0.45}
    window: 600ms
  - id: agent-cheer
    when: {sequence: [sad, happy], within: 5s, min_prob: 0.4}
    window: 2s
    role: agent
  - id: gold-turn
    when: {sequence: [fearful, neutral], within: 4s, min_prob: 0.4}
    attributes: {tier: gold}
    keep_firing_for: 400ms
    cooldown: 2s
inhibit:
  - source: {priority: critical}
    target: {priority: low}
"""

# the reloaded set: one rule gone, one changed, one new (its version differs, so do its alerts)
RELOADED = (RULES.replace("  - id: resigned\n    when: {sum: [sad, neutral], above: 0.9}\n    window: 2s\n"
                          "    for: 1s\n", "")
            .replace("above: 0.7}", "above: 0.6}")
            .replace("inhibit:", "  - id: late-break\n"
                                 "    when: {sequence: [fearful, angry], within: 3s, min_prob: 0.5}\ninhibit:"))
EPISODES = ("angry", "fearful", "sad", "happy", "neutral", "other")
SCRIPT = [(2000, {"neutral": 0.8}), (2000, {"fearful": 0.8}), (3000, {"angry": 0.9}), (2000, {"neutral": 0.8}),
          (2000, {"angry": 0.85}), (2000, {"sad": 0.8}), (2000, {"happy": 0.8}), (2000, {"fearful": 0.7}),
          (2000, {"neutral": 0.8})]  # every sequence rule's steps, in order


def _messages(seed: int, calls: int = 24) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        chunk = int(rng.choice([1000, 1000, 1000, 2000, 600, 500, 260]))  # aligned to the 200 ms hop, or not
        roles = ("CUSTOMER", "AGENT", "MIXED")[: 1 + i % 3]
        for role in roles:
            timeline = random_timeline(rng, 30, episodes=EPISODES, episode_share=0.5)
            if i % 3 != 1:
                timeline = timeline[:2] + SCRIPT + timeline[2:]
            msgs = synthetic_call(f"c{i:02d}", timeline,
                                  role=role, chunk_ms=chunk, noise=0.3, seed=seed * 100 + i,
                                  end_of_call=bool(i % 4), attributes={"tier": "gold"} if i % 2 else None)
            if i % 5 == 1 and len(msgs) > 6:
                del msgs[4]                                     # a lost chunk: the next one is a gap
                msgs[4]["gap_before"] = True
            if i % 7 == 2 and len(msgs) > 3:
                msgs.insert(3, dict(msgs[2]))                   # a redelivered chunk: a duplicate seq
            if i % 6 == 3 and len(msgs) > 8:
                msgs.insert(8, dict(msgs[5]))                   # a late copy of an older chunk
            if i % 4 == 1 and len(msgs) > 10:
                for m in msgs[10:]:                             # the call's attributes change mid-call
                    m["attributes"] = {"tier": "silver"}
            out.append(msgs)
    messages = interleave(out)
    bad = dict(messages[10], logits=[float("nan")] * messages[10]["n_frames"] * 9, seq=10_000)
    messages.insert(40, bad)
    labels = list(reversed(messages[60]["labels"]))             # classes in another order
    logits = np.asarray(messages[60]["logits"]).reshape(-1, 9)[:, ::-1].ravel().tolist()
    messages[60] = dict(messages[60], labels=labels, logits=logits)
    return messages


@pytest.mark.parametrize(("seed", "reload_rules", "reload_json"),
                         [(1, False, False), (2, True, True), (3, True, False), (4, False, True)])
def test_step_batch_equals_step_one_message_after_the_other(seed, reload_rules, reload_json):
    a_states, a_results, b_states, b_results = both_ways(RULES, RELOADED, "columns.yaml", _messages(seed), seed,
                                                         reload_rules, reload_json)
    assert b_results == a_results
    stored = {c: json.dumps(stored_form(s)) for c, s in b_states.items()}
    assert stored == {c: json.dumps(s) for c, s in a_states.items()}  # same JSON: same values, same key order
    events = [e for r in a_results if isinstance(r, list) for e in r]
    fired = {e["rule_id"] for e in events if e["status"] == "FIRING"}
    # threshold and sequence rules both fire
    assert {"angry", "break", "relapse", "agent-cheer", "gold-fear", "gold-turn"} <= fired, fired
    assert any(isinstance(r, str) for r in a_results)                  # the malformed message is rejected
    versions = {compile_ruleset(parse_ruleset(text, "columns.yaml")).version for text in (RULES, RELOADED)}
    assert not reload_rules or {e["rule_version"] for e in events} == versions


def test_step_batch_keeps_each_calls_order_within_a_batch():
    crs = compile_ruleset(parse_ruleset(RULES, "columns.yaml"))
    messages = _messages(5, calls=6)
    whole = step_batch(messages, {}.get, crs)                           # one batch: many messages per call
    _, want, _ = one_by_one(lambda _i: crs, messages)
    assert [str(r) if isinstance(r, ScoresError) else r[1] for r in whole] == want
    assert max(sum(1 for m in messages if m["call_id"] == c) for c in {m["call_id"] for m in messages}) > 20


def test_small_batches_go_message_by_message_with_the_same_results():
    crs = compile_ruleset(parse_ruleset(RULES, "columns.yaml"))
    messages = _messages(6, calls=8)
    _, want, _ = one_by_one(lambda _i: crs, messages)
    states, got = {}, []
    for i in range(0, len(messages), MIN_WAVE - 1):  # every wave smaller than MIN_WAVE
        part = messages[i:i + MIN_WAVE - 1]
        for m, res in zip(part, step_batch(part, states.get, crs)):
            if isinstance(res, ScoresError):
                got.append(str(res))
                continue
            states[m["call_id"]], ev = res
            got.append(ev)
            assert isinstance(states[m["call_id"]]["r"][m["role"]].get("ring", ""), str)  # step()'s own states
    assert got == want


def test_stored_form_is_the_string_ring_and_leaves_stored_states_alone():
    crs = compile_ruleset(parse_ruleset(RULES, "columns.yaml"))
    m = synthetic_call("x", [(2000, {"angry": 0.9})], end_of_call=False)
    [(state, _)] = step_many([(None, m[0])], crs)
    assert isinstance(state["r"]["CUSTOMER"]["ring"], np.ndarray)
    stored = stored_form(state)
    assert stored == step(None, m[0], crs)[0] and isinstance(stored["r"]["CUSTOMER"]["ring"], str)
    assert stored_form(stored) is stored


@pytest.mark.parametrize("seed", range(6))
def test_progress_many_equals_observe_sequence_point_by_point(seed):
    rng = np.random.default_rng(seed)
    crs = compile_ruleset(parse_ruleset(RULES, "columns.yaml"))
    for rule in [r for r in crs.rules if r.kind == SEQUENCE]:
        m, e = 200, 5
        times = (rng.integers(0, 40, m)[:, None] + np.arange(1, e + 1)) * 200
        # the precondition: the last step is reached nowhere (its class never dominates)
        steps_not_last = [c for c in rule.cols if c != rule.last_col]
        choices = np.array([c for c in range(9) if c != rule.last_col] + steps_not_last * 3)
        dominant = rng.choice(choices, (m, e))
        p_max = rng.uniform(0.3, 0.9, (m, e))
        valid = rng.random(e) < 0.8
        start = []
        for _ in range(m):  # earlier progress: none, or steps matched some time before
            sq = [None if rng.random() < 0.5 else int(times[0, 0] - rng.integers(0, 60) * 200)
                  for _ in rule.cols[:-1]] + [None]
            start.append(sq if any(s is not None for s in sq) else None)
        steps = np.array([[NO_STEP if s is None else s for s in (sq or [None] * len(rule.cols))] for sq in start])
        got = progress_many(rule, steps, times, dominant, p_max, valid)
        for b in range(m):
            st = {} if start[b] is None else {"sq": list(start[b])}
            for j in range(e):
                if valid[j]:
                    holds = observe_sequence(st, rule, int(times[b, j]), int(dominant[b, j]), float(p_max[b, j]))
                    assert holds is False
            want = [NO_STEP if s is None else s for s in st.get("sq", [None] * len(rule.cols))]
            assert got[b].tolist() == want, (rule.id, b)
