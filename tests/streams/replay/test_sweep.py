"""--sweep: the spec, the variants, and every value's counts equal to a separate replay at that value -
in the shared pass and in the fallback (one state per value) when the rule is an inhibition source."""
from __future__ import annotations

from collections import Counter

import pytest
from replay_cases import BASE, T0, calls, mixed_calls, ruleset

from emowatch.rules.compiler import compile_ruleset
from emowatch.streams.replay.params import ReplayParamsError, Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, run_replay
from emowatch.streams.replay.sweep import parse_sweep, plan_sweep

INHIBITING = BASE + """\
inhibit:
  - source: {rules: [angry]}
    target: {rules: [fearful]}
"""


def test_specs():
    s = parse_sweep("angry.above=0.6:0.9:0.05")
    assert (s.rule_id, s.param) == ("angry", "above") and s.values == (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
    assert s.label(0.65) == "0.65"
    d = parse_sweep("team.vip.angry.for=1s:3s:500ms")  # rule ids may hold dots
    assert (d.rule_id, d.param, d.values, d.label(1500)) == ("team.vip.angry", "for", (1000, 1500, 2000, 2500, 3000),
                                                             "1500ms")
    for bad in ("angry.above", "angry=0.1:0.2:0.1", "angry.colour=1:2:1", "angry.above=0.9:0.6:0.1",
                "angry.for=1s:2s:0", "angry.above=0:1:0.001"):
        with pytest.raises(ReplayParamsError):
            parse_sweep(bad)


def test_plan_checks_the_parameter_against_the_rule():
    crs = compile_ruleset(ruleset())
    with pytest.raises(ReplayParamsError, match="not in rule set"):
        plan_sweep(crs, parse_sweep("nope.for=1s:2s:1s"))
    with pytest.raises(ReplayParamsError, match="above rule"):
        plan_sweep(crs, parse_sweep("angry.below=0.1:0.2:0.1"))
    with pytest.raises(ReplayParamsError, match="multiple of the hop"):
        plan_sweep(crs, parse_sweep("angry.window=300ms:900ms:300ms"))
    with pytest.raises(ReplayParamsError, match="not a sequence"):
        plan_sweep(crs, parse_sweep("angry.within=1s:2s:1s"))
    plan = plan_sweep(crs, parse_sweep("angry.for=1s:3s:1s"))
    assert plan.shared and len(plan.lanes) == 1 and plan.variant_ids == ["angry@1s", "angry@2s", "angry@3s"]
    assert [r.id for r in plan.lanes[0].rules] == ["angry@1s", "angry@2s", "angry@3s", "fearful"]
    source = plan_sweep(compile_ruleset(ruleset(INHIBITING)), parse_sweep("angry.for=1s:3s:1s"))
    assert not source.shared and "inhibition source" in source.reason and len(source.lanes) == 3
    target = plan_sweep(compile_ruleset(ruleset(INHIBITING)), parse_sweep("fearful.for=1s:3s:1s"))
    assert target.shared  # a target's variants are each muted by the (unswept) source, as alone
    longest = plan_sweep(compile_ruleset(ruleset()), parse_sweep("angry.window=1s:2s:1s"))
    assert not longest.shared and "longest window" in longest.reason


def _separately(text, spec, messages, **replace):
    """Alerts of the swept rule per value from one plain replay per value."""
    out = []
    for value in spec.values:
        shown = spec.label(value) if spec.param in ("for", "window") else str(value)
        rs = ruleset(text, **{k.format(v=shown): v.format(v=shown) for k, v in replace.items()})
        run = run_replay(ReplayRequest(rs, "x", Window(T0), Scope("*"), "kafka"), messages)
        fired = [e for e in run.events if e["status"] == "FIRING"]
        out.append((sum(e["rule_id"] == spec.rule_id for e in fired), len(fired),
                    dict(Counter(e["business_line"] for e in fired if e["rule_id"] == spec.rule_id))))
    return out


@pytest.mark.parametrize("text, sweep, replace", [
    (BASE, "angry.above=0.6:0.95:0.05", {"above: 0.75": "above: {v}"}),
    (BASE, "angry.for=0s:4s:500ms", {"for: 2s": "for: {v}"}),
    (BASE, "angry.window=200ms:1s:200ms", {"for: 2s\n": "for: 2s\n    window: {v}\n"}),
    (INHIBITING, "angry.above=0.6:0.95:0.05", {"above: 0.75": "above: {v}"}),   # separate lanes
    (INHIBITING, "fearful.for=0s:2s:500ms", {"for: 1s": "for: {v}"}),           # a target: shared
])
def test_sweep_counts_equal_separate_replays(text, sweep, replace):
    messages = calls() + mixed_calls(T0, n=9)
    spec = parse_sweep(sweep)
    run = run_replay(ReplayRequest(ruleset(text), "x", Window(T0), Scope("*"), "kafka", sweep=spec), messages)
    got = [(v["alerts"], v["set_alerts"], v["by_business_line"]) for v in run.sweep["values"]]
    assert got == _separately(text, spec, messages, **replace)
    assert len({g[0] for g in got}) > 1  # the values make a difference
    assert run.sweep["mode"] == ("separate" if text is INHIBITING and sweep.startswith("angry") else "shared")
