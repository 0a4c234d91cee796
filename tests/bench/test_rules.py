"""The pure parts of ``emowatch bench rules``: its workload and the in-process reference run."""
from __future__ import annotations

from collections import Counter

from emowatch.bench.rules import RULES_10, step_only, workload
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
