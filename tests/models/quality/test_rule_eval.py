"""Rule-level evaluation: the labelled calls CSV, the per-rule counts and ratios (checked by hand), and the whole
path on synthetic calls scored by the bundled demo model (counts checked against an independent oracle)."""
from __future__ import annotations

from pathlib import Path

import pytest
from rule_eval_cases import counts_of, fired_one_by_one, write_case

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.rule_eval import LabelledCall, fired_rules, read_calls, rule_report
from emowatch.rules.loader import load_ruleset, parse_ruleset
from emowatch.streams.replay.audio_source import AudioCalls
from emowatch.streams.replay.labelled_calls import RuleEvaluation, audio_call_id
from emowatch.streams.settings import Settings

RULES = ["a", "b", "c"]


def _call(line: int, *expected: str) -> LabelledCall:
    return LabelledCall(line=line, expected=frozenset(expected), call_id=f"c{line}")


def test_counts_and_ratios_by_hand():
    calls = [_call(2, "a"), _call(3, "a", "b"), _call(4), _call(5, "b"), _call(6)]
    fired = {2: {"a": {"fired_ms": 1000, "role": "MIXED", "alerts": 1}},
             3: {"a": {"fired_ms": 500, "role": "CUSTOMER", "alerts": 2}},
             4: {"a": {"fired_ms": 0, "role": "MIXED", "alerts": 1}}}  # lines 5 and 6 fired nothing
    rep = rule_report(calls, fired, RULES, disabled=["c"])
    by = {r["rule"]: r for r in rep["rules"]}
    # a: expected on 2, 3; fired on 2, 3, 4 -> tp 2, fp 1 (4), fn 0, tn 2 (5, 6)
    assert {k: by["a"][k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 2, "fp": 1, "fn": 0, "tn": 2}
    assert (by["a"]["precision"], by["a"]["recall"], by["a"]["f1"]) == pytest.approx((2 / 3, 1.0, 0.8))
    assert by["a"]["undefined"] == []
    # b: expected on 3, 5; never fired -> tp 0, fp 0, fn 2, tn 3; precision 0/0 and F1 reported as 0
    assert {k: by["b"][k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 0, "fp": 0, "fn": 2, "tn": 3}
    assert (by["b"]["precision"], by["b"]["recall"], by["b"]["f1"]) == (0.0, 0.0, 0.0)
    assert by["b"]["undefined"] == ["precision", "f1"]
    # c: in the file, never expected nor fired: still reported, everything undefined
    assert {k: by["c"][k] for k in ("tp", "fp", "fn", "tn")} == {"tp": 0, "fp": 0, "fn": 0, "tn": 5}
    assert by["c"]["undefined"] == ["precision", "recall", "f1"] and by["c"]["disabled"] is True
    assert [r["rule"] for r in rep["rules"]] == RULES  # file order
    # micro: tp 2, fp 1, fn 2 -> precision 2/3, recall 1/2, F1 4/7
    m = rep["micro"]
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (2, 1, 2, 10)
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((2 / 3, 0.5, 4 / 7))
    # any alert: expected on 2, 3, 5; fired on 2, 3, 4 -> tp 2, fp 1, fn 1, tn 1
    a = rep["any_alert"]
    assert (a["tp"], a["fp"], a["fn"], a["tn"]) == (2, 1, 1, 1)
    table = {row["line"]: row for row in rep["calls"]}
    assert table[3]["missed"] == ["b"] and table[3]["extra"] == [] and table[3]["fired"]["a"]["alerts"] == 2
    assert table[4]["extra"] == ["a"] and table[5]["missed"] == ["b"] and table[6]["fired"] == {}
    with pytest.raises(QualityError, match="fired but are not among"):
        rule_report(calls, {2: {"z": {}}}, RULES)


def test_fired_rules_counts_firing_events_and_keeps_the_first():
    ev = [{"status": "FIRING", "call_id": "x", "rule_id": "a", "fired_ms": 3000, "role": "AGENT"},
          {"status": "RESOLVED", "call_id": "x", "rule_id": "a", "fired_ms": 5000, "role": "AGENT"},
          {"status": "FIRING", "call_id": "x", "rule_id": "a", "fired_ms": 9000, "role": "CUSTOMER"},
          {"status": "RESOLVED", "call_id": "y", "rule_id": "b", "fired_ms": 1, "role": "MIXED"}]
    assert fired_rules(ev) == {"x": {"a": {"fired_ms": 3000, "role": "AGENT", "alerts": 2}}}


def _csv(tmp_path: Path, text: str) -> Path:
    (tmp_path / "x.wav").write_bytes(b"")
    p = tmp_path / "calls.csv"
    p.write_text(text, encoding="utf-8")
    return p


def test_read_calls_columns_and_defaults(tmp_path):
    p = _csv(tmp_path, "audio,call_id,expected,business_line,role,attr.agent_id\n"
                       "x.wav,,a; b ,,agent,ag-1\n,C-9,NONE,vip,,\n,C-10,,,,\n")
    calls = read_calls(p, RULES)
    assert [(c.line, c.expected, c.key, c.business_line, c.role, c.attributes) for c in calls] == [
        (2, frozenset({"a", "b"}), "x.wav", "default", "AGENT", {"agent_id": "ag-1"}),
        (3, frozenset(), "C-9", "vip", "MIXED", {}),
        (4, frozenset(), "C-10", None, "MIXED", {})]  # a stored call keeps its own line
    assert calls[0].audio == tmp_path / "x.wav"
    line_set = read_calls(_csv(tmp_path, "audio,expected\nx.wav,a\n"), RULES, business_line="vip")
    assert line_set[0].business_line == "vip"  # the rule set's line when it names one


@pytest.mark.parametrize("text, error", [
    ("audio,expected\nx.wav,a\nx.wav,a;zz\n", r"calls.csv:3: unknown rule id\(s\) 'zz' in expected"),
    ("audio,expected\nx.wav,none;a\n", "calls.csv:2: expected 'none;a' combines 'none'"),
    ("audio,call_id,expected\nx.wav,C1,a\n", r"calls.csv:2: give either audio or call_id \(not both\)"),
    ("audio,call_id,expected\n,,a\n", "calls.csv:2: give either audio or call_id"),
    ("audio,label\nx.wav,a\n", "calls.csv:1: no 'expected' column"),
    ("file,expected\nx.wav,a\n", "calls.csv:1: needs an 'audio' or a 'call_id' column"),
    ("audio,expected\nmissing.wav,a\n", "calls.csv:2: audio file .*missing.wav not found"),
    ("call_id,expected\nC1,a\nC1,b\n", "calls.csv:3: call 'C1' is already on line 2"),
    ("audio,expected,role\nx.wav,a,boss\n", "calls.csv:2: role 'boss' is not one of"),
    ("call_id,expected,role\nC1,a,agent\n", "calls.csv:2: role applies to audio rows only"),
    ("audio,expected\n", "no labelled calls"),
])
def test_read_calls_errors_name_the_line(tmp_path, text, error):
    with pytest.raises(QualityError, match=error):
        read_calls(_csv(tmp_path, text), RULES)


def test_a_business_line_the_rule_set_does_not_serve_is_an_error(tmp_path):
    p = _csv(tmp_path, "audio,expected,business_line\nx.wav,a,vip\nx.wav,a,retail\n")
    assert len(read_calls(p, RULES, business_line="*")) == 2
    with pytest.raises(QualityError, match="calls.csv:3: business line 'retail' is not served by the rule set"):
        read_calls(p, RULES, business_line="vip")


def test_silences_are_not_applied_and_said(tmp_path):
    rs = parse_ruleset("rule_set: s\nbusiness_line: '*'\nrules:\n  - id: a\n    when: {emotion: angry, above: 0.5}\n"
                       "silences:\n  - rules: [a]\n    ends_at: 2100-01-01T00:00:00Z\n")
    ev = RuleEvaluation(rs, "calls.csv")
    assert ev.crs.silences == [] and ev.notes == ["1 silence(s) of the rule file not applied (runtime mutes, not "
                                                  "part of what the rules detect)"]


class Recording(AudioCalls):
    """AudioCalls that keeps what it scored (the oracle evaluates the same records its own way)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = {}

    def score(self, path, **kwargs):
        self.records[kwargs["call_id"]] = out = super().score(path, **kwargs)
        return out


def test_synthetic_calls_scored_by_the_demo_model(tmp_path, bundled_model):
    """The whole path: recordings -> the agent's scoring -> the engine -> per-rule counts; the counts equal
    the ones computed from each call's fired rules found independently (``rules.engine.step`` one message at a
    time over the same records, no batching, no replay engine)."""
    labels, rules_file = write_case(tmp_path)
    ruleset = load_ruleset(rules_file)
    rule_ids = [r.id for r in ruleset.rules]
    calls = read_calls(labels, rule_ids, business_line=ruleset.business_line)
    ev = RuleEvaluation(ruleset, labels)
    audio = Recording(bundled_model, Settings())
    ev.run_audio(calls, audio)
    rep = ev.report(calls)

    fired, expected = {}, {}
    for c in calls:
        records = audio.records[audio_call_id(c)]
        assert records and [r["end_of_call"] for r in records].count(True) == len({r["role"] for r in records})
        roles = {r["role"] for r in records}
        assert roles == ({"CUSTOMER", "AGENT"} if c.key == "stereo.wav" else {"MIXED"})
        assert all(r["speech"] is not None and r["n_frames"] == 50 for r in records)  # 1 s chunks, VAD per frame
        assert [r["seq"] for r in records if r["role"] == min(roles)] == list(range(len(records) // len(roles)))
        fired[c.key], expected[c.key] = fired_one_by_one(records, ruleset), set(c.expected)
    assert fired == {"calm.wav": set(), "escalating.wav": {"angry"}, "sad.wav": {"sad"}, "angry.wav": {"angry"},
                     "stereo.wav": {"angry", "customer-angry"}}  # what the demo model makes of the styles
    assert {row["call"]: set(row["fired"]) for row in rep["calls"]} == fired
    for r in rep["rules"]:
        assert {k: r[k] for k in ("tp", "fp", "fn", "tn")} == counts_of(expected, fired, r["rule"]), r["rule"]
    by = {r["rule"]: r for r in rep["rules"]}
    assert by["angry"]["tp"] == 3 and by["sad"]["fp"] == 1 and by["sad"]["fn"] == 1  # each outcome occurs
    assert by["fear"]["tn"] == 5 and by["fear"]["undefined"] == ["precision", "recall", "f1"]
    stereo = next(row for row in rep["calls"] if row["call"] == "stereo.wav")
    assert stereo["fired"]["customer-angry"]["role"] == "CUSTOMER"
    assert rep["models"] == [f"{bundled_model.name}:{bundled_model.version}"] and rep["notes"] == []
