"""Rule-set hot reload, pure part: validation of rules-topic records and which set is active."""
from __future__ import annotations

import pytest

from emowatch.rules import load_ruleset, parse_ruleset
from emowatch.rules.loader import bundled_rule_files
from emowatch.streams.rules_worker.reload import (
    RuleSetRejected,
    RuleSetSelector,
    fits,
    ruleset_from_record,
    ruleset_record,
)
from emowatch.topics.serde import AvroSerde

BUNDLED = {p.stem: p for p in bundled_rule_files()}


def _rs(rule_set: str, line: str, threshold: float = 0.7, examples: str = ""):
    return parse_ruleset(f"rule_set: {rule_set}\nbusiness_line: '{line}'\nrules:\n"
                         f"  - id: r1\n    when: {{emotion: angry, above: {threshold}}}\n{examples}",
                         f"{rule_set}.yaml")


def test_record_round_trips_through_avro_and_validates_again():
    rs = load_ruleset(BUNDLED["vip"])
    rec = ruleset_record(rs, published_at_ms=1_700_000_000_000)
    assert rec["source_name"] == "vip.yaml" and rec["source_yaml"] == rs.source_text
    serde = AvroSerde("RuleSet")
    back = serde.decode(serde.encode(rec, topic="t"), topic="t")
    got = ruleset_from_record(b"vip", back)
    assert (got.rule_set, got.business_line, got.version) == ("vip", "vip", rs.version)


@pytest.mark.parametrize("change, stage, words", [
    ({"source_yaml": "rule_set: vip\nbusiness_line: vip\nrules:\n  - id: a\n    when: {emotion: angy, above: 0.5}\n"},
     "DECODE", "unknown emotion 'angy'"),
    ({"version": "000000000000"}, "DECODE", "version"),
    ({"business_line": "retail"}, "DECODE", "business_line"),
    ({"source_yaml": "rules: ["}, "DECODE", "invalid rule set"),
])
def test_inconsistent_or_invalid_records_are_rejected(change, stage, words):
    rec = {**ruleset_record(load_ruleset(BUNDLED["vip"]), published_at_ms=0), **change}
    with pytest.raises(RuleSetRejected) as exc:
        ruleset_from_record(b"vip", rec)
    assert exc.value.stage == stage and words in exc.value.reason


def test_key_must_be_the_rule_set_id():
    rec = ruleset_record(load_ruleset(BUNDLED["vip"]), published_at_ms=0)
    with pytest.raises(RuleSetRejected, match="message key 'aftersales'"):
        ruleset_from_record(b"aftersales", rec)


def test_failing_example_is_rejected_with_evaluate_stage():
    bad = _rs("vip", "vip", examples="    examples:\n      - name: never\n        scores:\n"
                                     "          - {for: 3s, probs: {angry: 0.9}}\n        expect: []\n")
    with pytest.raises(RuleSetRejected) as exc:
        ruleset_from_record(b"vip", ruleset_record(bad, published_at_ms=0))
    assert exc.value.stage == "EVALUATE" and "example 'never'" in exc.value.reason


def test_fits():
    assert fits("vip", "vip") and fits("vip", "*") and fits("*", "*")
    assert not fits("vip", "aftersales") and not fits("*", "vip")


def test_worker_refuses_an_initial_file_for_another_line():
    with pytest.raises(ValueError, match="serves business line 'aftersales'"):
        RuleSetSelector("vip", _rs("aftersales", "aftersales"), "file:a.yaml")
    with pytest.raises(ValueError):
        RuleSetSelector("*", _rs("vip", "vip"), "file:v.yaml")


def test_topic_beats_file_specific_beats_generic_newest_wins():
    file_generic = _rs("default", "*", 0.9)
    sel = RuleSetSelector("vip", file_generic, "file:default.yaml")
    assert sel.active.source == "file:default.yaml"
    generic_new = _rs("default", "*", 0.8)
    assert sel.offer("default", generic_new, 3, "topic@3") is True  # newer generic beats the (generic) file
    vip = _rs("vip", "vip", 0.7)
    assert sel.offer("vip", vip, 4, "topic@4") is True
    assert sel.active.ruleset is vip
    assert sel.offer("default", _rs("default", "*", 0.6), 5, "topic@5") is False  # generic never beats specific
    assert sel.active.ruleset is vip
    vip2 = _rs("vip-b", "vip", 0.5)
    assert sel.offer("vip-b", vip2, 6, "topic@6") is True  # newest specific wins
    assert sel.active.source == "topic@6"


def test_specific_file_is_not_replaced_by_a_generic_publication():
    sel = RuleSetSelector("vip", _rs("vip", "vip"), "file:vip.yaml")
    assert sel.offer("default", _rs("default", "*"), 0, "topic@0") is False
    assert sel.active.source == "file:vip.yaml"


def test_tombstone_and_other_line_withdraw_a_key_and_fall_back():
    file_rs = _rs("vip", "vip", 0.9)
    sel = RuleSetSelector("vip", file_rs, "file:vip.yaml")
    sel.offer("vip", _rs("vip", "vip", 0.5), 1, "topic@1")
    assert sel.offer("vip", None, 2, "topic@2") is True  # tombstone
    assert sel.active.ruleset is file_rs
    sel.offer("x", _rs("x", "vip", 0.4), 3, "topic@3")
    assert sel.offer("x", _rs("x", "aftersales", 0.4), 4, "topic@4") is True  # key now serves another line
    assert sel.active.ruleset is file_rs and sel.by_key == {}


def test_same_version_again_is_not_a_change():
    sel = RuleSetSelector("*", _rs("default", "*", 0.9), "file:d.yaml")
    assert sel.offer("default", _rs("default", "*", 0.9), 7, "topic@7") is False
    assert sel.active.source == "topic@7"
    assert sel.describe()["candidates"] == [f"default@7:{sel.active.ruleset.version}"]


def test_star_worker_only_takes_star_sets():
    sel = RuleSetSelector("*", _rs("default", "*"), "file:d.yaml")
    assert sel.offer("vip", _rs("vip", "vip"), 1, "topic@1") is False
    assert sel.by_key == {}
