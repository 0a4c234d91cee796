"""Conversation rules column-wise (``step_batch``) equal ``step`` one message after the other - the same events and
the same stored states, byte for byte as JSON - with the call states kept in memory between batches or stored and
read back as JSON (table recovery), over randomized stereo and mono calls with voice activity: aligned and
unaligned chunks, lost and redelivered chunks, messages without ``speech``, a role that never comes, ends of call,
and a rule-set reload that changes the roles' leaves mid-stream. Also the call state's two forms."""

from __future__ import annotations

import json

import numpy as np
import pytest
from batches import both_ways, one_by_one

from emowatch.rules.batched import stored_form
from emowatch.rules.callstate import stored_call, working_copy
from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.loader import parse_ruleset
from emowatch.rules.testing import interleave, random_timeline, random_turns, synthetic_call

RULES = """\
rule_set: conv-batches
business_line: "*"
defaults: {window: 1s, hop: 200ms, role: any}
rules:
  - id: angry
    when: {emotion: angry, above: 0.7}
    for: 1s
  - id: silent-after-anger
    when: {silence: customer, min: 2s, after: {emotion: angry, above: 0.6}, within: 3s}
  - id: dead-air
    when: {silence: both, min: 2s}
    cooldown: 3s
  - id: agent-overtalk
    when: {overtalk: agent, min: 600ms}
  - id: interruptions
    when: {count: {overtalk: any, min: 200ms}, at_least: 2, within: 20s}
  - id: agent-dominates
    when: {talk_ratio: agent, above: 0.6, over: 10s, min_speech: 2s}
  - id: both-upset
    when: {all: [{emotion: angry, above: 0.5, role: customer}, {emotion: neutral, below: 0.4, role: agent}]}
    during: 2s-40s
  - id: not-calmed
    when: {if: {emotion: angry, above: 0.6, role: customer}, not_followed_by: {overtalk: any, min: 200ms},
           within: 4s}
    role: customer
  - id: mono-quiet
    when: {silence: mixed, min: 2s}
"""

# the reloaded set: another leaf on the agent, one on the customer gone (the roles' leaves change)
RELOADED = (RULES.replace("{emotion: neutral, below: 0.4, role: agent}]}",
                          "{emotion: neutral, below: 0.4, role: agent}, {emotion: sad, above: 0.3, role: agent}]}")
            .replace("    when: {silence: customer, min: 2s, after: {emotion: angry, above: 0.6}, within: 3s}\n",
                     "    when: {silence: customer, min: 3s}\n"))
EPISODES = ("angry", "neutral", "sad", "fearful")


def _messages(seed: int, calls: int = 14, seconds: int = 24) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        chunk = int(rng.choice([1000, 1000, 600, 260, 2000]))
        customer, agent = random_turns(rng, seconds, overlap_share=0.4, dead_air_share=0.2)
        tracks = [("MIXED", np.maximum(customer, agent))] if i % 5 == 4 else [("CUSTOMER", customer), ("AGENT", agent)]
        if i % 7 == 3:
            tracks = tracks[:1]  # the other track never comes
        for r, (role, speech) in enumerate(tracks):
            msgs = synthetic_call(f"c{i:02d}", random_timeline(rng, seconds, episodes=EPISODES, episode_share=0.5),
                                  role=role, chunk_ms=chunk, noise=0.3, seed=seed * 100 + 2 * i + r,
                                  speech=None if i % 6 == 5 and r == 1 else speech, end_of_call=bool(i % 3))
            if i % 4 == 1 and len(msgs) > 8:
                del msgs[5]                                   # a lost chunk: the next one is a gap
                msgs[5]["gap_before"] = True
            if i % 5 == 2 and len(msgs) > 6:
                msgs.insert(4, dict(msgs[3]))                 # a redelivered chunk
            out.append(msgs)
    return interleave(out)


@pytest.mark.parametrize(("seed", "reload_rules", "reload_json"),
                         [(1, False, False), (2, False, True), (3, True, False), (4, True, True)])
def test_step_batch_equals_step_on_conversations(seed, reload_rules, reload_json):
    a_states, a_results, b_states, b_results = both_ways(RULES, RELOADED, "conv.yaml", _messages(seed), seed,
                                                         reload_rules, reload_json, max_batch=120)
    assert b_results == a_results
    stored = {c: json.dumps(stored_form(s), allow_nan=False) for c, s in b_states.items()}
    assert stored == {c: json.dumps(s, allow_nan=False) for c, s in a_states.items()}
    fired = {e["rule_id"] for r in a_results if isinstance(r, list) for e in r if e["status"] == "FIRING"}
    assert {"dead-air", "agent-overtalk", "interruptions", "agent-dominates", "mono-quiet"} <= fired, fired


def test_the_stored_form_reads_back_to_the_same_state():
    crs = compile_ruleset(parse_ruleset(RULES, "conv.yaml"))
    _, _, seen = one_by_one(lambda _i: crs, _messages(5, calls=8))
    calls = [s["c"] for s in seen if s.get("c")]
    assert any("v" in c and "t" in c for c in calls) and any(c.get("p") for c in calls)
    for c in calls:
        text = json.dumps(c, allow_nan=False)
        memory = working_copy(json.loads(text), crs.role_leaf_cols)
        assert "v" not in memory and "o" not in memory and not isinstance(memory.get("t"), str)
        assert json.dumps(stored_call(memory), allow_nan=False) == text
        assert stored_call(c) is c and json.loads(text) == c  # (the input is left as it was)


def test_a_stored_state_of_the_earlier_form_is_read():
    crs = compile_ruleset(parse_ruleset(RULES, "conv.yaml"))
    width = len(crs.role_leaf_cols["CUSTOMER"])
    c = {"x": ["CUSTOMER", "AGENT"], "f": 10,
         "p": {"CUSTOMER": {"b": 10, "s": [3, -1], "l": [[1, 0.5, *[0.25] * (width - 1)], None]}},
         "v": {"CUSTOMER": [1800, 1000]}, "o": [1500, 1700, "AGENT"]}
    memory = working_copy(c, crs.role_leaf_cols)
    leaves = memory["p"]["CUSTOMER"]["l"]
    assert leaves[0] == 0.5 and all(x != x for x in leaves[1:])  # only the leaf its mask says was scored
    g = memory["g"]  # last speech end per role, run start per role, the overlap (who: 1 + role index)
    assert g[0] == 1800.0 and g[2] == 1000.0 and g[1] != g[1] and g[3] != g[3] and g[4:] == [1500.0, 1700.0, 2.0]
    back = stored_call(memory)
    assert back["v"] == c["v"] and back["o"] == c["o"] and back["p"]["CUSTOMER"]["s"] == [3, -1]
    assert back["p"]["CUSTOMER"]["l"] == [[1, 0.5, *[0.0] * (width - 1)], None]
