"""The pure parts of ``emowatch bench rules``: its workload and the in-process reference run."""
from __future__ import annotations

from collections import Counter

import numpy as np

from emowatch.bench.rule_sets import RULES_20, stereo_workload, workload_for
from emowatch.bench.rules import RULES_10, step_only, workload
from emowatch.rules.batched import step_batch
from emowatch.rules.compiler import CALL, COMPOUND, THRESHOLD, compile_ruleset
from emowatch.rules.conditions import walk
from emowatch.rules.loader import parse_ruleset


def test_the_bench_rule_set_has_ten_rules_of_every_kind():
    rs = parse_ruleset(RULES_10, "bench10.yaml")
    kinds = {type(r.when).__name__ for r in rs.rules}
    assert len(rs.rules) == 10 and len(kinds) >= 3 and rs.inhibit


def test_workload_interleaves_concurrent_calls_in_seq_order():
    msgs = workload(calls=8, seconds=5)
    assert len(msgs) == 8 * 5
    assert Counter(m["call_id"] for m in msgs) == {f"bench-{i:05d}": 5 for i in range(8)}
    assert [m["call_id"] for m in msgs[:8]] == [f"bench-{i:05d}" for i in range(8)]  # one second of every call
    for cid in {m["call_id"] for m in msgs}:
        assert [m["seq"] for m in msgs if m["call_id"] == cid] == list(range(5))
    assert {m["role"] for m in msgs if m["call_id"] == "bench-00003"} == {"AGENT"}


def test_step_only_reports_events_costs_and_state_sizes():
    out = step_only(workload(calls=12, seconds=30), batch=100)
    assert out["events"] > 0 and out["events_equal"] is True  # the column-wise path gives step()'s events
    assert out["us_cpu_per_msg"] > 0 and out["step_one_by_one_us_cpu_per_msg"] > 0 and out["decode_us_cpu_per_msg"] > 0
    assert 0 < out["state_bytes_finished"] < out["state_bytes_active_mean"] <= out["state_bytes_active_max"]


def test_the_twenty_rule_set_is_the_ten_and_ten_conditions_of_conversations():
    ten, twenty = parse_ruleset(RULES_10, "bench10.yaml"), parse_ruleset(RULES_20, "bench20.yaml")
    assert len(twenty.rules) == 20 and twenty.rules[:10] == ten.rules and twenty.inhibit == ten.inhibit
    new = twenty.rules[10:]
    kinds = {type(c).__name__ for r in new for c in walk(r.when)}
    assert {"SilenceCondition", "OvertalkCondition", "TalkRatioCondition", "TrendCondition", "CountCondition",
            "NotFollowedByCondition", "AllCondition"} <= kinds
    assert any(r.ignore for r in new) and any(r.during for r in new) and any(r.after for r in new)
    crs = compile_ruleset(twenty)
    assert {r.kind for r in crs.rules[10:]} == {THRESHOLD, CALL, COMPOUND}  # top-level trends: threshold columns


def test_stereo_workload_has_both_roles_of_every_call_with_voice_activity():
    msgs = stereo_workload(calls=4, seconds=5)
    assert len(msgs) == len(workload(calls=8, seconds=5)) == len(workload_for(20, 8, 5)) == 40
    assert Counter((m["call_id"], m["role"]) for m in msgs) == {
        (f"bench-{i:05d}", role): 5 for i in range(4) for role in ("CUSTOMER", "AGENT")}
    assert [(m["call_id"], m["role"]) for m in msgs[:3]] == [
        ("bench-00000", "CUSTOMER"), ("bench-00000", "AGENT"), ("bench-00001", "CUSTOMER")]  # live traffic
    assert all(len(m["speech"]) == m["n_frames"] for m in msgs)
    speech = np.concatenate([m["speech"] for m in msgs]) >= 0.5
    assert 0.2 < speech.mean() < 0.8
    assert msgs == stereo_workload(calls=4, seconds=5)


def test_step_only_of_the_twenty_rule_set_gives_the_same_events_both_ways():
    out = step_only(stereo_workload(calls=12, seconds=30), batch=100, rules=20)
    assert out["events"] > 0 and out["events_equal"] is True
    assert set(out["events_per_rule"]) & {r.id for r in parse_ruleset(RULES_20).rules[10:]}  # new rules fire
    assert 0 < out["state_bytes_finished"] < out["state_bytes_active_mean"] <= out["state_bytes_active_max"]


def test_step_batch_with_a_rule_on_all_frames_next_to_speech_only_rules():
    text = RULES_20.replace("inhibit:\n", "  - id: all-frames\n    when: {emotion: angry, above: 0.7}\n"
                                           "    speech_only: false\ninhibit:\n")
    crs = compile_ruleset(parse_ruleset(text, "bench20.yaml"))
    step_batch(stereo_workload(calls=8, seconds=3), {}.get, crs)
