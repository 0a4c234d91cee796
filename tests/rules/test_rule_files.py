"""Every rule file in the repository validates, and every rule example runs as a test."""

from __future__ import annotations

from pathlib import Path

import pytest

from emowatch.rules import check_files, load_ruleset, run_example
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


def test_a_failing_example_is_reported(tmp_path: Path) -> None:
    text = (Path(FILES[0]).parent / "vip.yaml").read_text().replace("at: 2s}", "at: 2200ms}")
    broken = tmp_path / "vip.yaml"
    broken.write_text(text)
    [err] = check_files([broken])
    assert "fear held for 1 s fires" in err.reason and "expected [FIRING@2200ms" in err.reason
    assert text.splitlines()[err.line - 1].strip().startswith("- name: fear held")
