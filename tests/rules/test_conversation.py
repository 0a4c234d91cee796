"""Conversation rules on stereo calls: silence, overtalk (who started it), talk ratio, combinations across roles;
the same alerts whatever order the roles' messages arrive in."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emowatch.rules import conversation, parse_ruleset, step
from emowatch.rules.batched import step_batch, stored_form
from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.examples import example_messages
from emowatch.rules.model import Example

RULES = """
rule_set: conv-test
business_line: "*"
defaults: {window: 1s, hop: 200ms, channels: [webhook]}
rules:
  - id: customer-silent
    when: {silence: customer, min: 5s}
  - id: dead-air
    when: {silence: both, min: 4s}
  - id: agent-overtalk
    when: {overtalk: agent, min: 1s}
  - id: customer-overtalk
    when: {overtalk: customer, min: 1s}
  - id: any-overtalk
    when: {overtalk: any, min: 1s}
  - id: agent-dominates
    when: {talk_ratio: agent, above: 0.75, over: 10s, min_speech: 4s}
  - id: silent-after-anger
    when: {silence: customer, min: 3s, after: {emotion: angry, above: 0.6}, within: 2s}
  - id: angry-and-talked-over
    when:
      all:
        - {emotion: angry, above: 0.6, role: customer}
        - {overtalk: agent, min: 400ms}
    role: customer
  - id: mono-dead-air
    when: {silence: mixed, min: 3s}
"""


@pytest.fixture(scope="module")
def crs():
    return compile_ruleset(parse_ruleset(RULES, "conv.yaml"))


def speak(ms: int, emotion: str = "neutral") -> dict:
    return {"for": f"{ms}ms", "probs": {emotion: 0.9}}


def quiet(ms: int) -> dict:
    return {"for": f"{ms}ms", "silent": True}


def messages(crs, tracks: dict, end: bool = True, chunk: str = "1s") -> list[dict]:
    ex = Example.model_validate({"name": "t", "tracks": tracks, "end_of_call": end, "chunk": chunk})
    ruleset = parse_ruleset(RULES, "conv.yaml")
    out = example_messages(ex, ruleset)
    if end:  # example_messages ends the last message only: end every role's track
        last = {}
        for m in out:
            last[m["role"]] = m
        for m in last.values():
            m["end_of_call"] = True
    return out


def run(crs, msgs: list[dict]) -> list[tuple]:
    state = None
    events = []
    for m in msgs:
        state, ev = step(state, m, crs)
        events += ev
    return [(e["rule_id"], e["status"], e["role"], e["fired_ms"]) for e in events]


def only(events, *rules):
    return [e for e in events if e[0] in rules]


def test_customer_silence_fires_min_after_the_last_speech_and_resolves_when_they_speak(crs) -> None:
    msgs = messages(crs, {"customer": [speak(3000), quiet(9000), speak(2000)],
                          "agent": [quiet(2000), speak(12000)]})
    ev = run(crs, msgs)
    assert only(ev, "customer-silent") == [("customer-silent", "FIRING", "CUSTOMER", 8000),
                                           ("customer-silent", "RESOLVED", "CUSTOMER", 12200)]
    assert only(ev, "dead-air") == []  # the agent talked


def test_no_silence_before_anyone_spoke_and_dead_air_needs_both_quiet(crs) -> None:
    msgs = messages(crs, {"customer": [quiet(6000), speak(2000), quiet(6000)],
                          "agent": [quiet(14000)]})
    ev = run(crs, msgs)
    assert only(ev, "customer-silent") == [("customer-silent", "FIRING", "CUSTOMER", 13000),
                                           ("customer-silent", "RESOLVED", "CUSTOMER", 14000)]
    assert only(ev, "dead-air") == [("dead-air", "FIRING", "MIXED", 12000), ("dead-air", "RESOLVED", "MIXED", 14000)]


def test_overtalk_is_credited_to_the_one_who_started_it(crs) -> None:
    msgs = messages(crs, {"customer": [speak(4000), quiet(6000)],
                          "agent": [quiet(2000), speak(4000), quiet(4000)]})
    ev = run(crs, msgs)
    assert only(ev, "agent-overtalk", "customer-overtalk", "any-overtalk") == [
        ("agent-overtalk", "FIRING", "AGENT", 3000), ("any-overtalk", "FIRING", "MIXED", 3000),
        ("agent-overtalk", "RESOLVED", "AGENT", 4200), ("any-overtalk", "RESOLVED", "MIXED", 4200)]
    swapped = messages(crs, {"agent": [speak(4000), quiet(6000)],
                             "customer": [quiet(2000), speak(4000), quiet(4000)]})
    assert [e[0] for e in only(run(crs, swapped), "agent-overtalk", "customer-overtalk")] == [
        "customer-overtalk", "customer-overtalk"]


def test_a_simultaneous_start_is_nobody_s_interruption(crs) -> None:
    msgs = messages(crs, {"customer": [speak(3000), quiet(2000)], "agent": [speak(3000), quiet(2000)]})
    ev = run(crs, msgs)
    assert only(ev, "agent-overtalk", "customer-overtalk") == []
    assert [e[1] for e in only(ev, "any-overtalk")] == ["FIRING", "RESOLVED"]


def test_an_overlap_shorter_than_min_does_not_fire_and_a_short_gap_does_not_split_it(crs) -> None:
    short = messages(crs, {"customer": [speak(3000), quiet(2000)], "agent": [quiet(2200), speak(800), quiet(2000)]})
    assert only(run(crs, short), "agent-overtalk") == []
    # the agent's 60 ms pause inside a 1.4 s overlap: one overlap, long enough
    bridged = messages(crs, {"customer": [speak(4000), quiet(2000)],
                             "agent": [quiet(2000), speak(700), quiet(60), speak(640), quiet(2600)]},
                       chunk="200ms")
    assert [e[1] for e in only(run(crs, bridged), "agent-overtalk")] == ["FIRING", "RESOLVED"]
    split = messages(crs, {"customer": [speak(4000), quiet(2000)],
                           "agent": [quiet(2000), speak(700), quiet(300), speak(700), quiet(2300)]},
                     chunk="200ms")
    assert only(run(crs, split), "agent-overtalk") == []


def test_talk_ratio_needs_a_full_window_and_enough_speech(crs) -> None:
    msgs = messages(crs, {"customer": [speak(1000), quiet(19000)], "agent": [quiet(1000), speak(19000)]})
    ev = only(run(crs, msgs), "agent-dominates")
    assert ev[0] == ("agent-dominates", "FIRING", "AGENT", 10000)  # the 10 s window is full at 10 s
    few = messages(crs, {"customer": [speak(600), quiet(11400)], "agent": [quiet(9000), speak(3000)]})
    assert only(run(crs, few), "agent-dominates") == []  # under 4 s of speech in any 10 s


def test_silence_after_anger_within_the_window_only(crs) -> None:
    soon = messages(crs, {"customer": [speak(3000, "angry"), quiet(5000)], "agent": [quiet(8000)]})
    assert only(run(crs, soon), "silent-after-anger")[0] == ("silent-after-anger", "FIRING", "CUSTOMER", 6000)
    late = messages(crs, {"customer": [speak(3000, "angry"), speak(4000), quiet(5000)], "agent": [quiet(12000)]})
    assert only(run(crs, late), "silent-after-anger") == []  # calm talk in between: the anger was 4 s before


def test_a_combination_across_roles(crs) -> None:
    msgs = messages(crs, {"customer": [speak(4000, "angry"), quiet(3000)],
                          "agent": [quiet(2000), speak(3000), quiet(2000)]})
    ev = only(run(crs, msgs), "angry-and-talked-over")
    assert ev[0] == ("angry-and-talked-over", "FIRING", "CUSTOMER", 2400)
    calm = messages(crs, {"customer": [speak(4000), quiet(3000)], "agent": [quiet(2000), speak(3000), quiet(2000)]})
    assert only(run(crs, calm), "angry-and-talked-over") == []


def test_any_order_of_the_roles_messages_gives_the_same_alerts(crs) -> None:
    """Any interleaving of the two tracks gives the same alerts, as long as neither track ends before the other
    starts (then, for all the rules can tell, the other track never came: see the next tests)."""
    msgs = messages(crs, {"customer": [speak(3000, "angry"), quiet(2000), speak(3000), quiet(8000)],
                          "agent": [quiet(2000), speak(5000), quiet(1000), speak(8000)]})
    want = run(crs, msgs)
    assert len(want) >= 6
    by_role = {r: [m for m in msgs if m["role"] == r] for r in ("CUSTOMER", "AGENT")}
    c, a = by_role["CUSTOMER"], by_role["AGENT"]  # one track first, its end after the other's start
    orders = [c[:-1] + a + c[-1:], a[:-1] + c + a[-1:]]
    rng = np.random.default_rng(0)
    for _ in range(5):  # random interleavings that keep each role's own order
        a, b = list(by_role["CUSTOMER"]), list(by_role["AGENT"])
        picks = rng.permutation([0] * (len(a) - 1) + [1] * (len(b) - 1))
        order = [(a if p == 0 else b).pop(0) for p in picks]
        orders.append(order + a + b)
    for order in orders:
        assert sorted(run(crs, order)) == sorted(want)


def test_end_of_call_resolves_what_is_firing(crs) -> None:
    msgs = messages(crs, {"customer": [speak(2000), quiet(8000)], "agent": [speak(1000), quiet(9000)]})
    ev = only(run(crs, msgs), "customer-silent", "dead-air")
    assert ev == [("dead-air", "FIRING", "MIXED", 6000), ("customer-silent", "FIRING", "CUSTOMER", 7000),
                  ("customer-silent", "RESOLVED", "CUSTOMER", 10000), ("dead-air", "RESOLVED", "MIXED", 10000)]


def test_a_mono_call_has_its_own_silence_and_no_overtalk(crs) -> None:
    ex = Example.model_validate({"name": "m", "role": "mixed", "end_of_call": True,
                                 "scores": [speak(2000), quiet(5000), speak(1000)]})
    ev = run(crs, example_messages(ex, parse_ruleset(RULES, "conv.yaml")))
    assert only(ev, "mono-dead-air") == [("mono-dead-air", "FIRING", "MIXED", 5000),
                                         ("mono-dead-air", "RESOLVED", "MIXED", 7200)]
    assert only(ev, "any-overtalk", "customer-silent", "dead-air") == [
        ("dead-air", "FIRING", "MIXED", 6000), ("dead-air", "RESOLVED", "MIXED", 7200)]


def test_a_role_that_never_comes_is_taken_as_unknown_after_the_lag_limit(crs, monkeypatch) -> None:
    monkeypatch.setattr(conversation, "MAX_LAG_MS", 4000)
    msgs = [m for m in messages(crs, {"customer": [speak(2000), quiet(10000)], "agent": [quiet(12000)]}, end=False)
            if m["role"] == "CUSTOMER"]
    ev = only(run(crs, msgs), "customer-silent")
    assert ev == [("customer-silent", "FIRING", "CUSTOMER", 7000)]  # evaluated 4 s late, at 11 s, same alert
    state = None
    for m in msgs:
        state, _ = step(state, m, crs)
    assert len(state["c"]["p"]["CUSTOMER"]["s"]) <= 20


def test_the_input_state_is_not_changed(crs) -> None:
    msgs = messages(crs, {"customer": [speak(3000), quiet(3000)], "agent": [quiet(1000), speak(5000)]})
    state = None
    for m in msgs:
        before = repr(state)
        new, _ = step(state, m, crs)
        assert repr(state) == before
        state = new


def test_step_batch_equals_step_on_stereo_calls(crs) -> None:
    rng = np.random.default_rng(3)
    calls = []
    for i in range(12):
        tracks = {}
        for role in ("customer", "agent"):
            steps = []
            for _ in range(int(rng.integers(4, 9))):
                ms = int(rng.integers(1, 20)) * 200
                steps.append(quiet(ms) if rng.random() < 0.4 else speak(ms, str(rng.choice(["angry", "neutral"]))))
            tracks[role] = steps
        total = {r: sum(int(s["for"][:-2]) for s in st) for r, st in tracks.items()}
        longest = max(total.values())
        for r in tracks:
            if total[r] < longest:
                tracks[r].append(quiet(longest - total[r]))
        msgs = messages(crs, tracks, end=bool(i % 2))
        for m in msgs:
            m["call_id"] = f"c{i}"
        calls.append(msgs)
    stream = [m for group in itertools.zip_longest(*calls) for m in group if m is not None]
    one: dict = {}
    want = []
    for m in stream:
        one[m["call_id"]], ev = step(one.get(m["call_id"]), m, crs)
        want.append(ev)
    states: dict = {}
    got = []
    for b0 in range(0, len(stream), 37):
        part = stream[b0:b0 + 37]
        for m, (st, ev) in zip(part, step_batch(part, states.get, crs)):
            states[m["call_id"]] = st
            got.append(ev)
    assert got == want and sum(map(len, want)) > 10
    assert all(stored_form(states[c]) == one[c] for c in one)


def test_without_voice_activity_nothing_is_made_up(crs) -> None:
    msgs = messages(crs, {"customer": [speak(4000), quiet(8000)], "agent": [quiet(2000), speak(10000)]})
    for m in msgs:
        m["speech"] = None  # e.g. the inference agent runs with EMOWATCH_INFER__VAD=off
    ev = run(crs, msgs)
    assert [e for e in ev if e[0] != "angry-and-talked-over"] == []
    with_vad = run(crs, messages(crs, {"customer": [speak(4000), quiet(8000)], "agent": [quiet(2000), speak(10000)]}))
    assert {"agent-overtalk", "customer-silent"} <= {e[0] for e in with_vad}


def test_a_rule_set_of_conversation_rules_alone() -> None:
    only_conv = compile_ruleset(parse_ruleset("""
rule_set: c
business_line: "*"
rules:
  - id: customer-silent
    when: {silence: customer, min: 5s}
""", "c.yaml"))
    assert only_conv.windows == ()
    msgs = messages(only_conv, {"customer": [speak(2000), quiet(8000)], "agent": [quiet(10000)]})
    state, events = None, []
    for m in msgs:
        state, ev = step(state, m, only_conv)
        events += ev
    assert [(e["status"], e["fired_ms"]) for e in events] == [("FIRING", 7000), ("RESOLVED", 10000)]
    assert step_batch(msgs, {}.get, only_conv)[-1][1] == [e for e in events if e["status"] == "RESOLVED"]


def test_a_call_whose_other_track_never_comes_ends_with_its_one_track(crs) -> None:
    msgs = [m for m in messages(crs, {"customer": [speak(2000), quiet(10000)], "agent": [quiet(12000)]})
            if m["role"] == "CUSTOMER"]  # e.g. a mono upload labelled CUSTOMER
    assert only(run(crs, msgs), "customer-silent", "dead-air", "agent-overtalk") == [
        ("customer-silent", "FIRING", "CUSTOMER", 7000), ("customer-silent", "RESOLVED", "CUSTOMER", 12000)]


INHIBIT = """
rule_set: inh
business_line: "*"
defaults: {window: 1s, hop: 200ms, channels: [webhook]}
rules:
  - id: angry-critical
    when: {emotion: angry, above: 0.6}
    role: customer
    priority: critical
  - id: agent-overtalk
    when: {overtalk: agent, min: 1s}
    priority: low
  - id: customer-gone-quiet
    when: {silence: customer, min: 2s}
    priority: critical
  - id: agent-calm
    when: {emotion: neutral, above: 0.6}
    role: agent
    for: 3s
    priority: low
inhibit:
  - source: {priority: critical}
    target: {priority: low}
"""


def test_inhibitions_work_across_role_rules_and_conversation_rules() -> None:
    inh = compile_ruleset(parse_ruleset(INHIBIT, "inh.yaml"))
    angry = messages(inh, {"customer": [speak(4000, "angry"), quiet(2000)],
                           "agent": [quiet(2000), speak(3000), quiet(1000)]})
    ev = run(inh, angry)
    assert ("angry-critical", "FIRING", "CUSTOMER", 1000) in ev
    assert only(ev, "agent-overtalk") == []  # muted by the customer's critical anger
    calm = messages(inh, {"customer": [speak(4000), quiet(2000)], "agent": [quiet(2000), speak(3000), quiet(1000)]})
    assert [e[1] for e in only(run(inh, calm), "agent-overtalk")] == ["FIRING", "RESOLVED"]
    # a conversation rule as the source: the customer gone quiet (from 3 s) mutes the agent's low-priority rule
    quiet_call = messages(inh, {"customer": [speak(1000), quiet(7000)], "agent": [quiet(1000), speak(7000)]})
    ev = run(inh, quiet_call)
    assert only(ev, "customer-gone-quiet")[0] == ("customer-gone-quiet", "FIRING", "CUSTOMER", 3000)
    assert only(ev, "agent-calm") == []
    unmuted = compile_ruleset(parse_ruleset(INHIBIT.split("inhibit:")[0], "inh.yaml"))
    assert only(run(unmuted, quiet_call), "agent-calm")[0] == ("agent-calm", "FIRING", "AGENT", 4200)
