"""Rule options on the evaluation: speech_only, ignore (class masking), during / after (call-time scope)."""

from __future__ import annotations

from emowatch.rules import parse_ruleset, step
from emowatch.rules.examples import example_messages
from emowatch.rules.model import Example

RULES = """
rule_set: opts
business_line: "*"
defaults: {window: 1s, hop: 200ms, channels: [webhook]}
rules:
  - id: angry
    when: {emotion: angry, above: 0.6}
  - id: angry-all-frames
    when: {emotion: angry, above: 0.6}
    speech_only: false
  - id: angry-masked
    when: {emotion: angry, above: 0.6}
    ignore: [other, unknown]
  - id: angry-opening
    when: {emotion: angry, above: 0.6}
    during: first 3s
  - id: angry-late
    when: {emotion: angry, above: 0.6}
    after: 5s
  - id: angry-held
    when: {emotion: angry, above: 0.6}
    for: 2s
  - id: break
    when: {sequence: [neutral, angry], within: 5s}
"""
RS = parse_ruleset(RULES, "opts.yaml")


def run(steps: list[dict], end: bool = True) -> dict[str, list[tuple[str, int]]]:
    ex = Example.model_validate({"name": "x", "scores": steps, "end_of_call": end})
    state, out = None, {}
    for m in example_messages(ex, RS):
        state, events = step(state, m, RS)
        for e in events:
            out.setdefault(e["rule_id"], []).append((e["status"], e["fired_ms"]))
    return out


def test_silent_frames_do_not_drive_speech_only_rules() -> None:
    got = run([{"for": "2s", "probs": {"neutral": 0.9}},
               {"for": "3s", "probs": {"angry": 0.9}, "silent": True},
               {"for": "2s", "probs": {"neutral": 0.9}}])
    assert "angry" not in got and "angry-masked" not in got
    assert got["angry-all-frames"] == [("FIRING", 2800), ("RESOLVED", 5400)]


def test_ignored_classes_are_left_out_and_the_rest_renormalised() -> None:
    got = run([{"for": "3s", "probs": {"angry": 0.45, "other": 0.3, "unknown": 0.2}}])
    assert "angry" not in got  # 0.45 of all nine classes
    assert got["angry-masked"] == [("FIRING", 1000), ("RESOLVED", 3000)]  # 0.45 / 0.5 = 0.9 of the seven


def test_during_and_after_bound_where_a_rule_may_hold() -> None:
    got = run([{"for": "8s", "probs": {"angry": 0.9}}], end=False)
    assert got["angry"] == [("FIRING", 1000)]
    assert got["angry-opening"] == [("FIRING", 1000), ("RESOLVED", 3200)]  # 3 s is inside, 3.2 s is not
    assert got["angry-late"] == [("FIRING", 5000)]


def test_silence_is_a_point_where_a_speech_only_condition_does_not_hold() -> None:
    # 1.2 s of anger, 10 s without speech, 0.4 s of anger: never held for 2 s of speech
    got = run([{"for": "1200ms", "probs": {"angry": 0.9}}, {"for": "10s", "silent": True},
               {"for": "400ms", "probs": {"angry": 0.9}}])
    assert "angry-held" not in got
    # a firing alert resolves once the line goes quiet (the last 1 s window with 100 ms of speech ends at 4.8 s)
    got = run([{"for": "4s", "probs": {"angry": 0.9}}, {"for": "60s", "silent": True}], end=False)
    assert got["angry-held"] == [("FIRING", 3000), ("RESOLVED", 5000)]
    assert got["angry"] == [("FIRING", 1000), ("RESOLVED", 5000)]


def test_a_matched_sequence_stops_holding_in_silence_and_its_progress_waits() -> None:
    got = run([{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "3s", "probs": {"angry": 0.9}},
               {"for": "5s", "silent": True}], end=False)
    assert got["break"] == [("FIRING", 2600), ("RESOLVED", 6000)]
    # neutral, 2 s of silence, then anger: still within 5 s of the neutral step
    got = run([{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "2s", "silent": True},
               {"for": "2s", "probs": {"angry": 0.9}}], end=False)
    assert got["break"][0][0] == "FIRING"


def test_bad_voice_activity_is_a_scores_error_naming_the_field() -> None:
    import pytest

    from emowatch.rules.errors import ScoresError

    [message] = example_messages(Example.model_validate({"name": "x", "scores": [{"for": "1s", "silent": True}]}), RS)
    for bad, reason in (([1.0] * 49, "speech has 49 values, expected n_frames = 50"),
                        (["loud"] * 50, "speech is not numbers")):
        with pytest.raises(ScoresError, match=reason):
            step(None, {**message, "speech": bad}, RS)
