"""The pure parts of ``emowatch bench replay``: its sweeps run the way the bench reports them."""
from __future__ import annotations

from emowatch.bench.replay import SWEEP, SWEEP_SEPARATE, TARGETS
from emowatch.bench.rules import RULES_10
from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.loader import parse_ruleset
from emowatch.streams.replay.sweep import parse_sweep, plan_sweep


def test_the_bench_sweeps_ten_values_in_one_shared_pass_and_the_slow_path_separately():
    crs = compile_ruleset(parse_ruleset(RULES_10, "bench10.yaml"))
    shared, separate = plan_sweep(crs, parse_sweep(SWEEP)), plan_sweep(crs, parse_sweep(SWEEP_SEPARATE))
    assert len(shared.spec.values) == len(separate.spec.values) == 10
    assert shared.shared and len(shared.lanes) == 1
    assert not separate.shared and len(separate.lanes) == 10 and "inhibition source" in separate.reason
    assert TARGETS == {"replay_over_live_min": 5.0, "sweep_time_over_replay_max": 2.0}
