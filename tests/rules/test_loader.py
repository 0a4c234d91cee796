"""Rule files: strict validation with line numbers, defaults, versions, check_files."""

from __future__ import annotations

import pytest

from emowatch.rules import RuleFileError, check_files, load_ruleset, parse_ruleset
from emowatch.rules.durations import format_duration_ms, parse_duration_ms

GOOD = """\
rule_set: t
business_line: "*"
defaults:
  window: 1s
rules:
  - id: a
    when: {emotion: angry, above: 0.75}
    for: 2s
"""


def errors_of(text: str) -> list[RuleFileError]:
    with pytest.raises(RuleFileError) as info:
        parse_ruleset(text, "f.yaml")
    return info.value.errors


def test_good_file_resolves_defaults() -> None:
    rs = parse_ruleset(GOOD, "f.yaml")
    rule = rs.rule("a")
    assert (rule.for_, rule.window, rule.keep_firing_for, rule.cooldown) == (2000, 1000, 0, 0)
    assert (rule.priority, rule.action, rule.channels, rule.role, rule.name) == (
        "medium", "alert", ["webhook"], "any", "a")
    assert rs.rule_set == "t" and rs.business_line == "*" and rs.source_name == "f.yaml"
    assert len(rs.version) == 12 and int(rs.version, 16) >= 0


def test_unknown_key_reports_its_line() -> None:
    text = GOOD + "    colour: red\n"
    [err] = errors_of(text)
    assert str(err).startswith("f.yaml:9: ") and "unknown key 'colour'" in str(err)
    assert (err.file, err.line, err.column) == ("f.yaml", 9, 5)


@pytest.mark.parametrize("bad, line, fragment", [
    ("    when: {emotion: angy, above: 0.75}", 7, "unknown emotion 'angy'"),
    ("    when: {emotion: angry, above: 1.5}", 7, "less than or equal to 1"),
    ("    when: {emotion: angry, above: -0.1}", 7, "greater than or equal to 0"),
    ("    when: {emotion: angry}", 7, "exactly one of 'above' or 'below'"),
    ("    when: {emotion: angry, above: 0.5, sum: [sad, happy]}", 7, "exactly one of the keys"),
    ("    when: {sum: [sad], above: 0.5}", 7, "at least 2"),
    ("    when: {sequence: [neutral, angry], within: forever}", 7, "invalid duration"),
    ("    for: 2x", 8, "invalid duration '2x'"),
    ("    for: 2", 8, "invalid duration"),
])
def test_field_errors_have_line_numbers(bad: str, line: int, fragment: str) -> None:
    lines = GOOD.splitlines()
    lines[line - 1] = bad
    errs = errors_of("\n".join(lines) + "\n")
    assert any(e.line == line and fragment in e.reason for e in errs), [str(e) for e in errs]
    assert all(str(e).startswith(f"f.yaml:{e.line}: ") for e in errs)


def test_multiline_condition_points_at_the_offending_key() -> None:
    text = GOOD.replace("    when: {emotion: angry, above: 0.75}\n",
                        "    when:\n      emotion: angry\n      above: 7\n")
    [err] = errors_of(text)
    assert err.line == 9 and "rules[0].when.above" in err.reason


def test_missing_key_points_at_the_parent() -> None:
    text = GOOD.replace("    when: {emotion: angry, above: 0.75}\n", "")
    [err] = errors_of(text)
    assert err.line == 6 and "missing required key 'when'" in err.reason


def test_duplicate_rule_ids_and_unknown_references() -> None:
    text = GOOD + """\
  - id: a
    when: {emotion: sad, above: 0.5}
inhibit:
  - source: {rules: [nope]}
    target: {priority: low}
silences:
  - {rules: [ghost], ends_at: 1700000000000}
"""
    errs = errors_of(text)
    reasons = {e.line: e.reason for e in errs}
    assert "duplicate rule id 'a'" in reasons[9]
    assert "unknown rule 'nope'" in reasons[12]
    assert "unknown rule 'ghost'" in reasons[15]


def test_duplicate_yaml_key_and_syntax_error() -> None:
    [err] = errors_of(GOOD + "    for: 3s\n")
    assert err.line == 9 and "duplicate key 'for'" in err.reason
    [err] = errors_of("rule_set: t\nrules: [\n  {id: a,\n")
    assert err.line >= 2 and "invalid YAML" in err.reason


def test_window_must_be_a_multiple_of_hop() -> None:
    [err] = errors_of(GOOD + "    window: 500ms\n".replace("500ms", "300ms"))
    assert err.line == 9 and "multiple of defaults.hop" in err.reason


def test_not_a_mapping() -> None:
    [err] = errors_of("- just\n- a list\n")
    assert err.line == 1 and "mapping" in err.reason


def test_version_ignores_comments_and_order_but_not_values() -> None:
    base = parse_ruleset(GOOD).version
    reordered = GOOD.replace('rule_set: t\nbusiness_line: "*"\n', 'business_line: "*"  # all\nrule_set: t\n')
    assert parse_ruleset("# comment\n" + reordered).version == base
    assert parse_ruleset(GOOD.replace("0.75", "0.76")).version != base


def test_check_files_collects_errors(tmp_path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD + "    colour: red\n    priority: urgent\n")
    failing = tmp_path / "failing.yaml"
    failing.write_text(GOOD + """\
    examples:
      - name: wrong expectation
        scores: [{for: 4s, probs: {angry: 0.9}}]
        expect: [{status: FIRING, at: 1s}]
""")
    errs = check_files([good, bad, failing, tmp_path / "missing.yaml"])
    assert [(e.file.rsplit("/", 1)[-1], e.line) for e in errs] == [
        ("bad.yaml", 9), ("bad.yaml", 10), ("failing.yaml", 10), ("missing.yaml", 0)]
    assert "expected [FIRING@1s], got [FIRING@3s]" in errs[2].reason
    assert load_ruleset(good).rule("a").for_ == 2000


def test_durations() -> None:
    assert [parse_duration_ms(v) for v in ("500ms", "2s", "1.5s", "1m", "1m30s", "1h", 0, "0")] == [
        500, 2000, 1500, 60_000, 90_000, 3_600_000, 0, 0]
    for bad in ("2", 2, "s", "2 s", "-1s", "0.0001s", True, None):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)
    assert [format_duration_ms(v) for v in (0, 1500, 2000, 60_000)] == ["0s", "1500ms", "2s", "1m"]


def test_timestamps_accept_iso_and_epoch_ms() -> None:
    text = (GOOD + "silences:\n  - {rules: [a], ends_at: 2024-01-04T22:30:00Z}\n"
            "  - {rules: [a], ends_at: 1704407400000}\n")
    rs = parse_ruleset(text)
    assert rs.silences[0].ends_at == rs.silences[1].ends_at == 1704407400000
