"""The seed's rule files (alert_rules.yaml): reading, converting, and `check_files` accepting them."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from emowatch.rules import check_files, load_ruleset, parse_ruleset
from emowatch.rules.errors import RuleFileError
from emowatch.rules.loader import bundled_rule_files
from emowatch.rules.model import EMOTIONS
from emowatch.rules.seed_convert import SeedOptionError, convert_seed, default_rule_set_id, seed_rule_id
from emowatch.rules.seed_format import is_seed_text, normalise_emotion, read_seed_rules

DATA = Path(__file__).parent / "data"
SEED = DATA / "seed_alert_rules.yaml"  # the article's example, reformatted as the YAML it was
GOLDEN = DATA / "seed_alert_rules.converted.yaml"  # regenerate: emowatch rules convert SEED --out GOLDEN


def _convert(rules: str, **kw):
    return convert_seed("rules:\n" + textwrap.indent(textwrap.dedent(rules), "  "), "alert_rules.yaml", **kw)


def _errors(rules: str) -> list[RuleFileError]:
    with pytest.raises(RuleFileError) as info:
        _convert(rules)
    return info.value.errors


def test_the_seed_example_converts_to_the_golden_file() -> None:
    assert convert_seed(SEED.read_text(encoding="utf-8"), str(SEED)).text == GOLDEN.read_text(encoding="utf-8")


def test_the_converted_rules_mean_what_the_seed_said() -> None:
    rs = load_ruleset(GOLDEN)
    assert (rs.rule_set, rs.business_line) == ("seed_alert_rules", "*")
    fear, combo = rs.rules
    assert (fear.name, fear.when.emotion, fear.when.above, fear.for_) == ("VIP客户恐惧告警", "fearful", 0.6, 1000)
    assert (fear.priority, fear.channels, fear.role) == ("high", ["webhook", "email"], "any")
    assert (combo.name, combo.when.sum, combo.when.above, combo.for_) == ("售后失望组合", ["sad", "neutral"], 0.8, 0)
    assert (combo.priority, combo.channels) == ("medium", ["webhook"])  # channels: the defaults' webhook
    assert fear.id == seed_rule_id("VIP客户恐惧告警") and fear.id.startswith("vip-")
    assert combo.id == seed_rule_id("售后失望组合") and combo.id.startswith("seed-")
    assert [len(r.examples) for r in rs.rules] == [3, 2]
    assert check_files([GOLDEN]) == []


def test_the_header_says_where_it_came_from_and_what_was_assumed() -> None:
    header = [line for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line.startswith("#")]
    assert "seed_alert_rules.yaml" in header[0]
    assert any("'售后失望组合' (line 10): no channels; webhook" in line for line in header)


def test_check_accepts_the_seed_file_with_a_note() -> None:
    notes: list[str] = []
    assert check_files([SEED], notes=notes) == []
    assert len(notes) == 1 and "converted from the seed's format" in notes[0]
    assert f"emowatch rules convert {SEED}" in notes[0]


def test_the_generated_examples_can_fail() -> None:
    """The examples pin the semantics: a wrong `for` or threshold in the converted file fails them."""
    text = GOLDEN.read_text(encoding="utf-8")
    no_wait = parse_ruleset(text.replace("for: 1s\n", "for: 0s\n"), "golden.yaml")
    lower = parse_ruleset(text.replace("above: 0.6}", "above: 0.4}"), "golden.yaml")
    from emowatch.rules import run_examples

    assert {e.reason.split("'")[1] for e in run_examples(no_wait)} == {
        "fearful at 0.8 fires once held for 1s", "fearful at 0.8 for 1800ms holds only 800ms (under 1s): stays quiet"}
    assert [e.reason.split("'")[1] for e in run_examples(lower)] == ["fearful at 0.5 (not above 0.6) stays quiet"]


def test_detection() -> None:
    assert is_seed_text(SEED.read_text(encoding="utf-8"))
    assert not is_seed_text(GOLDEN.read_text(encoding="utf-8"))
    assert not any(is_seed_text(p.read_text(encoding="utf-8")) for p in bundled_rule_files())
    assert not is_seed_text("rules: [\n")  # a syntax error is the loader's to report
    assert not is_seed_text("rules:\n  - {id: x, when: {emotion: angry, above: 0.5}, threshold: 1}\n")


def test_a_seed_file_that_cannot_be_read_is_reported_by_check(tmp_path: Path) -> None:
    bad = tmp_path / "alert_rules.yaml"
    bad.write_text("rules:\n  - name: x\n    emotion: angy\n    threshold: 0.5\n", encoding="utf-8")
    notes: list[str] = []
    [err] = check_files([bad], notes=notes)
    assert (err.file, err.line) == (str(bad), 3) and "unknown emotion 'angy'" in err.reason and notes == []


@pytest.mark.parametrize("rules, line, reason", [
    ("- {name: a, emotion: angy, threshold: 0.5}", 2, "unknown emotion 'angy' (did you mean 'angry'?)"),
    ("- name: a\n  emotion: angry\n  threshold: 75", 4, "75 is outside [0, 1]; it is a probability (75% is 0.75)"),
    ("- name: a\n  emotion: angry\n  threshold: -0.1", 4, "outside [0, 1]"),
    ("- name: a\n  emotion: angry\n  threshold: '60%'", 4, "expected a probability between 0 and 1"),
    ("- name: a\n  emotion: angry\n  threshold: 1.0", 4, "1 can never be exceeded"),
    ("- name: a\n  emotion: angry", 2, "missing required key 'threshold' in rules[0]"),
    ("- emotion: angry\n  threshold: 0.5", 2, "missing required key 'name' in rules[0]"),
    ("- name: a\n  threshold: 0.5", 2, "rules[0] has 'threshold' but no 'emotion'"),
    ("- name: a\n  priority: high", 2, "rules[0] has no condition"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  combination: {emotions: [sad, neutral], min_sum: 0.8}", 5,
     "rules[0] has both 'emotion' and 'combination'"),
    ("- name: a\n  combination: {emotions: [sad, neutral]}", 3,
     "missing required key 'min_sum' in rules[0].combination"),
    ("- name: a\n  combination: {emotions: [sad], min_sum: 0.5}", 3, "at least two emotions"),
    ("- name: a\n  combination: {emotions: [sad, 难过], min_sum: 0.5}", 3, "lists an emotion twice"),
    ("- name: a\n  combination: {emotions: [sad, neutral], min_sum: 0.5, weight: 2}", 3,
     "unknown key 'weight' in rules[0].combination"),
    ("- name: a\n  combination: {emotions: [sad, neutral], min_sum: 0.5}\n  threshold: 0.5", 4,
     "a combination takes 'min_sum'"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  duration_sec: -1", 5, "expected seconds as a number >= 0"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  duration_sec: 2s", 5, "expected seconds as a number >= 0"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  duration_sec: 0.0005", 5, "not a whole number of milliseconds"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  priority: urgent", 5, "'urgent' is not one of low, medium"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  channels: [Bad Name]", 5, "'Bad Name' is not a channel name"),
    ("- name: a\n  emotion: angry\n  threshold: 0.5\n  colour: red", 5, "unknown key 'colour' in rules[0]"),
    ("- name: ''\n  emotion: angry\n  threshold: 0.5", 2, "rules[0].name: expected a non-empty string"),
    ("- just a string", 2, "a rule must be a mapping"),
    ("- {name: Fear, emotion: fearful, threshold: 0.5}\n- {name: fear, emotion: angry, threshold: 0.5}", 3,
     "name 'fear' gives the rule id 'fear', as 'Fear' (line 2) does"),
])
def test_unconvertible_input_is_reported_with_file_and_line(rules: str, line: int, reason: str) -> None:
    errors = _errors(rules)
    assert [e.file for e in errors] == ["alert_rules.yaml"] * len(errors)
    assert any(e.line == line and reason in e.reason for e in errors), [str(e) for e in errors]


def test_every_problem_is_reported_not_just_the_first() -> None:
    errors = _errors("- {name: a, emotion: angy, threshold: 2}\n- {name: b, emotion: sad}\n")
    assert [(e.line, e.reason.split(":")[0]) for e in errors] == [
        (2, "rules[0].emotion"), (2, "rules[0].threshold"),
        (3, "missing required key 'threshold' in rules[1] (the emotion's confidence, 0 to 1)")]


@pytest.mark.parametrize("text, reason", [
    ("- a\n- b\n", "must be a YAML mapping"),
    ("rules: []\n", "needs a non-empty 'rules' list"),
    ("rules:\n  - {name: a, emotion: angry, threshold: 0.5}\nversion: 2\n", "unknown key 'version' at the top level"),
])
def test_file_level_problems(text: str, reason: str) -> None:
    with pytest.raises(RuleFileError) as info:
        read_seed_rules(text, "alert_rules.yaml")
    assert reason in info.value.reason


def test_emotions_may_be_chinese_names_or_model_tokens() -> None:
    from emowatch.models.checkpoint import TOKENS  # the model's own vocabulary: 生气/angry ... <unk>

    assert [normalise_emotion(token) for token in TOKENS] == list(EMOTIONS)
    assert [normalise_emotion(token.split("/")[0]) for token in TOKENS[:-1]] == list(EMOTIONS[:-1])
    assert [normalise_emotion(e.upper()) for e in EMOTIONS] == list(EMOTIONS)
    assert (normalise_emotion("愤怒"), normalise_emotion("中性"), normalise_emotion(" Fearful ")) == (
        "angry", "neutral", "fearful")
    for bad in ("生气/sad", "anger", "", 3):
        with pytest.raises(ValueError, match="emotion"):
            normalise_emotion(bad)


def test_chinese_names_channel_aliases_and_odd_durations_are_noted() -> None:
    conv = _convert("""
        - name: 客户生气
          emotion: 生气/angry
          threshold: 0.75
          duration_sec: 0.3
          priority: HIGH
          channels: [钉钉, Webhook, webhook]
    """)
    rule = conv.ruleset.rules[0]
    assert (rule.when.emotion, rule.for_, rule.priority, rule.channels) == ("angry", 300, "high",
                                                                             ["dingtalk", "webhook"])
    notes = "\n".join(conv.notes)
    assert "emotion '生气/angry' is angry" in notes and "channel '钉钉' is dingtalk" in notes
    assert "duration_sec 0.3 is checked every 200ms, so it fires after 400ms" in notes
    assert "no priority" not in notes
    assert "#   - rules[0] '客户生气' (line 3): emotion '生气/angry' is angry" in conv.text
    assert [(e.status, e.at) for e in rule.examples[0].expect] == [("FIRING", 1400), ("RESOLVED", 2400)]


@pytest.mark.parametrize("threshold", [0, 0.05, 0.3, 0.5, 0.75, 0.999])
@pytest.mark.parametrize("emotions", [["angry"], ["sad", "neutral"], ["sad", "neutral", "other"]])
def test_thresholds_across_the_range_convert_with_passing_examples(threshold: float, emotions: list[str]) -> None:
    cond = (f"emotion: {emotions[0]}\n  threshold: {threshold}" if len(emotions) == 1
            else f"combination: {{emotions: [{', '.join(emotions)}], min_sum: {threshold}}}")
    conv = _convert(f"- name: r\n  {cond}\n  duration_sec: 2\n")  # raises if a generated example failed
    rule = conv.ruleset.rules[0]
    assert rule.when.above == threshold and rule.for_ == 2000
    assert len(rule.examples) == (2 if threshold == 0 else 3)


def test_ids_do_not_depend_on_position() -> None:
    one = _convert("- {name: VIP fear, emotion: fearful, threshold: 0.6}\n- {name: 售后, emotion: sad, threshold: 0.6}")
    two = _convert("- {name: 售后, emotion: sad, threshold: 0.6}\n- {name: VIP fear, emotion: fearful, threshold: 0.6}")
    assert [r.id for r in one.ruleset.rules] == ["vip-fear", seed_rule_id("售后")]
    assert [r.id for r in two.ruleset.rules] == [seed_rule_id("售后"), "vip-fear"]
    assert seed_rule_id("售后") == seed_rule_id("售后") != seed_rule_id("售前")
    assert seed_rule_id("!!!").startswith("seed-")


def test_options() -> None:
    conv = _convert("- {name: a, emotion: angry, threshold: 0.5}", rule_set="seed-vip", business_line="vip")
    assert (conv.ruleset.rule_set, conv.ruleset.business_line) == ("seed-vip", "vip")
    assert default_rule_set_id("/etc/alert_rules.yaml") == "alert_rules"
    assert default_rule_set_id("告警.yaml") == "seed"
    with pytest.raises(SeedOptionError, match="rule_set 'a b'"):
        _convert("- {name: a, emotion: angry, threshold: 0.5}", rule_set="a b")
    with pytest.raises(SeedOptionError, match="business_line ''"):
        _convert("- {name: a, emotion: angry, threshold: 0.5}", business_line="")
