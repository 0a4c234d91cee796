"""Lifecycle (pending, firing, keep_firing_for, resolved, cooldown), end of call, dedup, gaps, determinism."""

from __future__ import annotations

import copy
import json

import pytest

from emowatch.rules import ScoresError, alert_id, call_finished, parse_ruleset, state_size_bytes, step
from emowatch.rules.windows import decode_ring

ANGRY = "- id: a\n  when: {emotion: angry, above: 0.75}\n  for: 2s\n"


def test_pending_then_firing_then_resolved(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}, {"for": "2s", "probs": {"neutral": 0.9}}])
    state, events = feed(rs, msgs[:2])  # 0..2 s: condition holds since 1 s -> pending
    assert events == [] and state["r"]["CUSTOMER"]["rules"]["a"] == {"st": "p", "s": 1000}
    state, events = feed(rs, msgs[2:3], state)
    assert summarize(events) == [("a", "FIRING", 3000)]
    assert state["r"]["CUSTOMER"]["rules"]["a"]["st"] == "f"
    state, events = feed(rs, msgs[3:], state)
    assert summarize(events) == [("a", "RESOLVED", 4400)]
    assert "rules" not in state["r"]["CUSTOMER"]  # nothing left to remember


def test_pending_that_stops_holding_never_fires(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "2600ms", "probs": {"angry": 0.9}}, {"for": "3s", "probs": {"neutral": 0.9}}],
                    chunk="400ms")
    assert feed(rs, msgs)[1] == []


def test_for_zero_fires_at_first_true_point(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: a\n  when: {emotion: angry, above: 0.75}\n")
    assert summarize(feed(rs, timeline(rs, [{"for": "2s", "probs": {"angry": 0.9}}]))[1]) == [("a", "FIRING", 1000)]


def test_keep_firing_for_bridges_short_dips(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY + "  keep_firing_for: 2s\n")
    dip = [{"for": "4s", "probs": {"angry": 0.9}}, {"for": "1s", "probs": {"neutral": 0.9}},
           {"for": "2s", "probs": {"angry": 0.9}}, {"for": "4s", "probs": {"neutral": 0.9}}]
    assert summarize(feed(rs, timeline(rs, dip))[1]) == [("a", "FIRING", 3000), ("a", "RESOLVED", 9400)]
    rs0 = ruleset(ANGRY)  # without it the dip resolves and a new episode needs `for` again
    assert summarize(feed(rs0, timeline(rs0, dip))[1]) == [("a", "FIRING", 3000), ("a", "RESOLVED", 4400)]


def test_cooldown_delays_the_next_episode(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: a\n  when: {emotion: angry, above: 0.75}\n  cooldown: 5s\n")
    scores = [{"for": "2s", "probs": {"angry": 0.9}}, {"for": "2s", "probs": {"neutral": 0.9}},
              {"for": "6s", "probs": {"angry": 0.9}}]
    _, events = feed(rs, timeline(rs, scores))
    # resolved at 2.4 s -> no FIRING before 7.4 s; the second episode (held since 4.8 s) fires then
    assert summarize(events) == [("a", "FIRING", 1000), ("a", "RESOLVED", 2400), ("a", "FIRING", 7400)]
    assert events[2]["started_ms"] == 4800 and events[2]["alert_id"] != events[0]["alert_id"]
    rs0 = ruleset("- id: a\n  when: {emotion: angry, above: 0.75}\n")
    assert summarize(feed(rs0, timeline(rs0, scores))[1])[2] == ("a", "FIRING", 4800)


def test_resolved_shares_the_firing_id_and_ids_are_deterministic(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}, {"for": "2s", "probs": {"neutral": 0.9}}])
    _, first = feed(rs, msgs)
    _, again = feed(rs, copy.deepcopy(msgs))
    assert first == again and len(first) == 2
    assert first[0]["alert_id"] == first[1]["alert_id"] == alert_id("test", "a", "call-1", "CUSTOMER", 1000)
    assert first[0]["event_time"] == 1_700_000_000_000 + 3000 and first[1]["event_time"] == 1_700_000_000_000 + 4400


def test_duplicate_and_older_seq_are_ignored(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}])
    state, events = feed(rs, msgs[:3])
    assert summarize(events) == [("a", "FIRING", 3000)]
    for old in (msgs[2], msgs[0]):
        new_state, out = step(state, old, rs)
        assert out == [] and new_state == state
    state2, events = feed(rs, msgs[3:], state)
    assert events == [] and state2["r"]["CUSTOMER"]["seq"] == 4


def test_step_does_not_mutate_its_input(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}])
    state, _ = feed(rs, msgs[:2])
    frozen = json.dumps(state, sort_keys=True)
    step(state, msgs[2], rs)
    assert json.dumps(state, sort_keys=True) == frozen


def test_json_round_trip_of_state_changes_nothing(ruleset, timeline, summarize) -> None:
    rs = ruleset(ANGRY + "  keep_firing_for: 1s\n"
                 "- id: s\n  when: {sequence: [neutral, angry], within: 5s}\n")
    msgs = timeline(rs, [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "4s", "probs": {"angry": 0.9}},
                         {"for": "3s", "probs": {"neutral": 0.9}}], chunk="700ms")
    direct, via_json = None, None
    events_direct, events_json = [], []
    for m in msgs:
        direct, out = step(direct, m, rs)
        events_direct += out
        via_json, out = step(json.loads(json.dumps(via_json)), m, rs)
        events_json += out
    assert events_direct == events_json and len(events_direct) == 4
    assert json.dumps(direct, sort_keys=True) == json.dumps(via_json, sort_keys=True)


def test_end_of_call_resolves_and_drops_state(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY + "- id: p\n  when: {emotion: angry, above: 0.5}\n  for: 1m\n")
    state, events = feed(rs, timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}], end_of_call=True))
    assert summarize(events) == [("a", "FIRING", 3000), ("a", "RESOLVED", 5000)]
    assert state["r"]["CUSTOMER"] == {"seq": 4, "t": 5000, "end": True}
    assert call_finished(state)


def test_end_of_call_only_ends_that_role(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    cust = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}])
    agent = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}], role="agent", end_of_call=True)
    state, events = feed(rs, [m for pair in zip(cust, agent) for m in pair])
    assert sorted((e["role"], e["status"], e["fired_ms"]) for e in events) == [
        ("AGENT", "FIRING", 3000), ("AGENT", "RESOLVED", 4000), ("CUSTOMER", "FIRING", 3000)]
    assert not call_finished(state) and state["r"]["CUSTOMER"]["rules"]["a"]["st"] == "f"


def test_gap_restarts_smoothing_and_pending(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    scores = [{"for": "2s", "probs": {"angry": 0.9}}, {"for": "1s", "gap": True},
              {"for": "3s", "probs": {"angry": 0.9}}]
    msgs = timeline(rs, scores)
    assert msgs[2]["gap_before"] and msgs[2]["seq"] == 3
    # pending from 1 s is forgotten; after the gap the first full window ends at 4 s -> fires at 6 s
    assert summarize(feed(rs, msgs)[1]) == [("a", "FIRING", 6000)]


def test_chunking_does_not_change_results(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY + "  keep_firing_for: 600ms\n- id: s\n  when: {sum: [sad, neutral], above: 0.8}\n  for: 1s\n")
    scores = [{"for": "1500ms", "probs": {"neutral": 0.9}}, {"for": "3300ms", "probs": {"angry": 0.85}},
              {"for": "700ms", "probs": {"sad": 0.9}}, {"for": "2500ms", "probs": {"angry": 0.9}},
              {"for": "2s", "probs": {"sad": 0.9}}]
    expected = summarize(feed(rs, timeline(rs, scores))[1])
    assert expected == [("a", "FIRING", 4400), ("a", "RESOLVED", 5600), ("s", "FIRING", 10000)]
    for chunk in ("200ms", "340ms", "660ms", "1500ms", "4s"):
        assert summarize(feed(rs, timeline(rs, scores, chunk=chunk))[1]) == expected, chunk


def test_state_stays_bounded_on_long_calls(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY + "- id: long\n  when: {emotion: sad, above: 0.5}\n  window: 5s\n")
    scores = [{"for": "30s", "probs": {"angry": 0.9}}, {"for": "30s", "probs": {"sad": 0.9}}] * 5
    state, events = feed(rs, timeline(rs, scores))
    assert len(events) == 19  # 5 anger episodes, 5 sad ones (the last one still firing)
    ring = decode_ring(state["r"]["CUSTOMER"]["ring"])
    assert ring.shape == (5000 // 200 - 1, 10)
    assert state_size_bytes(state) < 4000
    assert state_size_bytes(state) == len(json.dumps(state))


def test_other_business_line_is_ignored(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY, business_line="vip")
    msgs = timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}], business_line="retail")
    state, events = feed(rs, msgs)
    assert events == [] and state["r"] == {}
    assert len(feed(rs, timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}]))[1]) == 1


def test_reload_without_a_firing_rule_resolves_it(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "6s", "probs": {"angry": 0.9}}])
    state, events = feed(rs, msgs[:4])
    assert summarize(events) == [("a", "FIRING", 3000)]
    rs2 = ruleset("- id: b\n  when: {emotion: sad, above: 0.5}\n")
    state, events = feed(rs2, msgs[4:], state)
    assert summarize(events) == [("a", "RESOLVED", 4000)]
    assert events[0]["rule_version"] == rs2.version and events[0]["priority"] == "MEDIUM"


def test_labels_carry_rule_name_rule_labels_and_call_attributes(ruleset, timeline, feed) -> None:
    rs = ruleset(ANGRY + "  name: Anger\n  labels: {team: qa}\n  channels: [webhook, email]\n")
    _, events = feed(rs, timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}], attributes={"agent_id": "a7"}))
    assert events[0]["labels"] == {"agent_id": "a7", "team": "qa", "rule_name": "Anger"}
    assert events[0]["channels"] == ["webhook", "email"] and events[0]["replay_id"] is None


def test_label_order_of_the_message_is_respected(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(ANGRY)
    msgs = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}])
    for m in msgs:  # same scores, classes listed in reverse order
        rows = [m["logits"][i:i + 9] for i in range(0, len(m["logits"]), 9)]
        m["logits"] = [v for row in rows for v in reversed(row)]
        m["labels"] = list(reversed(m["labels"]))
    assert summarize(feed(rs, msgs)[1]) == [("a", "FIRING", 3000)]


def test_malformed_scores_raise_scores_error(ruleset, timeline) -> None:
    rs = ruleset(ANGRY)
    good = timeline(rs, [{"for": "1s", "probs": {"angry": 0.9}}])[0]
    for bad in ({"n_frames": 49}, {"labels": ["angry"] * 9}, {"role": "BOSS"}, {"logits": [float("nan")] * 450}):
        with pytest.raises(ScoresError):
            step(None, {**good, **bad}, rs)


def test_parse_is_pure_text(ruleset) -> None:
    rs = parse_ruleset("rule_set: x\nbusiness_line: b\nrules:\n  - id: a\n    when: {emotion: sad, above: 0.5}\n")
    assert step(None, {"call_id": "c", "role": "AGENT", "seq": 0, "start_ms": 0, "frame_ms": 20, "n_frames": 0,
                       "logits": [], "business_line": "b", "event_time": 0}, rs)[1] == []


def test_reload_with_a_longer_window_waits_for_enough_history(ruleset, timeline, feed, summarize) -> None:
    short = ruleset("- id: a\n  when: {emotion: sad, above: 0.5}\n")
    msgs = timeline(short, [{"for": "10s", "probs": {"angry": 0.9}}])
    state, events = feed(short, msgs[:5])
    assert events == [] and len(decode_ring(state["r"]["CUSTOMER"]["ring"])) == 4  # 1 s window keeps 4 bins
    longer = ruleset("- id: b\n  when: {emotion: angry, above: 0.85}\n  window: 3s\n")
    state, events = feed(longer, msgs[5:], state)
    # the ring grows from 4 bins; the first full 3 s window ends at 7.2 s
    assert summarize(events) == [("b", "FIRING", 7200)] and abs(events[0]["value"] - 0.9) < 1e-3
