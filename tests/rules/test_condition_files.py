"""Bad conversation and combined conditions are rejected with the file, the line and the reason."""

from __future__ import annotations

import pytest

from emowatch.rules import RuleFileError, parse_ruleset
from emowatch.rules.compiler import CALL, COMPOUND, THRESHOLD, compile_ruleset

HEAD = """\
rule_set: t
business_line: "*"
rules:
  - id: ok
    when: {emotion: angry, above: 0.75}
  - id: bad
"""


def errors_of(when: str, extra: str = "") -> list[RuleFileError]:
    with pytest.raises(RuleFileError) as info:
        parse_ruleset(HEAD + f"    when: {when}\n" + extra, "f.yaml")
    return info.value.errors


@pytest.mark.parametrize("when, fragment", [
    ("{trend: angry, rises: 0.3}", "'rises' needs 'over'"),
    ("{trend: angry, above_baseline: 0.3, over: 5s}", "'over' goes with 'rises' or 'falls'"),
    ("{trend: angry, rises: 0.3, falls: 0.1, over: 5s}", "exactly one of 'rises', 'falls' or 'above_baseline'"),
    ("{silence: customer, min: 5s, after: {emotion: angry, above: 0.5}}", "'after' and 'within' go together"),
    ("{silence: everybody, min: 5s}", "silence"),
    ("{silence: customer, min: 5s, after: {overtalk: agent}, within: 2s}", "'after' takes an emotion, sum or trend"),
    ("{overtalk: agent, min: 2m}", "min"),
    ("{talk_ratio: agent, above: 0.7, over: 10s, min_speech: 20s}", "'min_speech' is longer than 'over'"),
    ("{all: [{emotion: angry, above: 0.5}]}", "at least 2"),
    ("{any: [{emotion: angry, above: 0.5}, {sequence: [neutral, angry], within: 5s}]}",
     "a 'sequence' cannot be nested in 'any'"),
    ("{count: {emotion: angry, above: 0.5}, at_least: 1, within: 1m}", "at_least"),
    ("{count: {emotion: angry, above: 0.5}, at_least: 3, within: 10m}", "within"),
    ("{if: {emotion: angry, above: 0.7}, not_followed_by: {emotion: angry, below: 0.4}}", "within"),
    ("{colour: red}", "a condition needs exactly one of the keys"),
    ("{trend: angry, rises: 0.3, over: 500ms}", "is not a multiple of defaults.hop"),
])
def test_bad_conditions_name_line_and_reason(when: str, fragment: str) -> None:
    errs = errors_of(when)
    assert errs and all(e.file == "f.yaml" for e in errs)
    assert any(fragment in e.reason for e in errs), [e.reason for e in errs]
    assert errs[0].line == 7


@pytest.mark.parametrize("extra, fragment", [
    ("    during: first 0s\n", "span ends before it starts"),
    ("    during: 2m-1m\n", "span ends before it starts"),
    ("    during: sometimes\n", "invalid span"),
    ("    ignore: [boredom]\n", "unknown emotion"),
])
def test_bad_rule_options(extra: str, fragment: str) -> None:
    errs = errors_of("{emotion: angry, above: 0.5}", extra)
    assert any(fragment in e.reason for e in errs) and errs[0].line == 8


def test_kinds_and_subjects() -> None:
    rs = parse_ruleset(HEAD + """\
    when: {silence: customer, min: 5s}
  - id: combo
    when: {all: [{emotion: angry, above: 0.5}, {not: {emotion: happy, above: 0.3}}]}
  - id: across
    when: {all: [{emotion: angry, above: 0.5, role: customer}, {emotion: angry, above: 0.5, role: agent}]}
  - id: mine
    role: agent
    when: {overtalk: any}
""", "f.yaml")
    crs = compile_ruleset(rs)
    kinds = {r.id: (r.kind, r.subject) for r in crs.rules}
    assert kinds == {"ok": (THRESHOLD, ""), "bad": (CALL, "CUSTOMER"), "combo": (COMPOUND, ""),
                     "across": (CALL, "CUSTOMER"), "mine": (CALL, "AGENT")}
    assert [len(r.leaves) for r in crs.rules] == [0, 0, 2, 2, 0]
    assert crs.threshold_matrix.shape[1] == 1 + 2 + 2


def test_scope_and_masking_compile() -> None:
    rs = parse_ruleset(HEAD + """\
    when: {emotion: angry, above: 0.5}
    during: 30s-2m
    after: 1m
    ignore: [other, unknown]
    speech_only: false
""", "f.yaml")
    rule = compile_ruleset(rs).by_id["bad"]
    assert rule.scope == (60_000, 120_000) and rule.ignore == (5, 8) and rule.speech is False
    assert compile_ruleset(rs).by_id["ok"].speech is True
