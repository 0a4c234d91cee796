"""Every rule file in the repository validates, and every rule example runs as a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from emowatch.rules import check_files, load_ruleset, run_example
from emowatch.rules.conditions import walk
from emowatch.rules.loader import bundled_rule_files

FILES = bundled_rule_files()
CASES = [(path, rule.id, j) for path in FILES for rule in load_ruleset(path).rules if rule.enabled
         for j in range(len(rule.examples))]


def test_the_repository_has_the_seed_rule_files() -> None:
    names = {p.name for p in FILES}
    assert {"default.yaml", "vip.yaml", "aftersales.yaml"} <= names
    assert load_ruleset(Path(FILES[0]).parent / "default.yaml").business_line == "*"
    assert len(CASES) >= 10


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_rule_file_is_valid(path: Path) -> None:
    assert check_files([path]) == []


@pytest.mark.parametrize("path, rule_id, index", CASES, ids=lambda v: str(getattr(v, "name", v)))
def test_rule_example(path: Path, rule_id: str, index: int) -> None:
    rs = load_ruleset(path)
    rule = rs.rule(rule_id)
    _, problem = run_example(rs, rule, rule.examples[index])
    assert problem is None, f"{path}:{rs.line_of('rules', rs.rules.index(rule), 'examples', index)}: {problem}"


def test_seed_policies_are_present() -> None:
    default = load_ruleset(Path(FILES[0]).parent / "default.yaml")
    angry = default.rule("angry-sustained").when
    assert (angry.emotion, angry.above, default.rule("angry-sustained").for_) == ("angry", 0.75, 2000)
    review = default.rule("uncertain-review")
    assert (review.when.emotion, review.when.above, review.action) == ("other", 0.4, "review")
    vip = load_ruleset(Path(FILES[0]).parent / "vip.yaml").rule("vip-fearful")
    assert (vip.when.emotion, vip.when.above, vip.priority, vip.channels) == ("fearful", 0.6, "high",
                                                                                 ["webhook", "email"])
    after = load_ruleset(Path(FILES[0]).parent / "aftersales.yaml").rule("aftersales-disappointed")
    assert (after.when.sum, after.when.above, after.priority) == (["sad", "neutral"], 0.8, "medium")


def test_collections_shows_every_condition_and_option() -> None:
    """rules/collections.yaml is the worked reference of docs/rules.md section 11: keep it complete."""
    rs = load_ruleset(Path(FILES[0]).parent / "collections.yaml")
    assert (rs.rule_set, rs.business_line) == ("collections", "collections")
    kinds = {type(c).__name__ for rule in rs.rules for c in walk(rule.when)}
    assert {"TrendCondition", "SilenceCondition", "TalkRatioCondition", "OvertalkCondition", "AllCondition",
            "AnyCondition", "NotCondition", "CountCondition", "NotFollowedByCondition"} <= kinds
    assert any(c.role for rule in rs.rules for c in walk(rule.when) if hasattr(c, "emotion"))
    assert any(r.during for r in rs.rules) and any(r.after for r in rs.rules)
    assert any(r.ignore for r in rs.rules) and any(r.speech_only is False for r in rs.rules)
    assert any(e.tracks for r in rs.rules for e in r.examples)
    for rule in rs.rules:  # every rule shows when it fires and when it does not
        assert any(e.expect for e in rule.examples) and any(not e.expect for e in rule.examples), rule.id


def test_a_failing_example_is_reported(tmp_path: Path) -> None:
    text = (Path(FILES[0]).parent / "vip.yaml").read_text().replace("at: 2s}", "at: 2200ms}")
    broken = tmp_path / "vip.yaml"
    broken.write_text(text)
    [err] = check_files([broken])
    assert "fear held for 1 s fires" in err.reason and "expected [FIRING@2200ms" in err.reason
    assert text.splitlines()[err.line - 1].strip().startswith("- name: fear held")
