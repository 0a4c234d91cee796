"""Each condition type, evaluated on event-time windows of the frame logits."""

from __future__ import annotations


def test_single_emotion_above_for(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: a\n  when: {emotion: angry, above: 0.75}\n  for: 2s\n")
    _, events = feed(rs, timeline(rs, [{"for": "5s", "probs": {"angry": 0.9}}]))
    assert summarize(events) == [("a", "FIRING", 3000)]
    e = events[0]
    assert (e["started_ms"], e["emotions"], e["threshold"], e["priority"], e["action"]) == (
        1000, ["angry"], 0.75, "MEDIUM", "ALERT")
    assert abs(e["value"] - 0.9) < 1e-4


def test_threshold_boundary(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: a\n  when: {emotion: angry, above: 0.9}\n")
    _, events = feed(rs, timeline(rs, [{"for": "3s", "probs": {"angry": 0.89}}]))
    assert events == []
    _, events = feed(rs, timeline(rs, [{"for": "3s", "probs": {"angry": 0.91}}]))
    assert summarize(events) == [("a", "FIRING", 1000)]


def test_below(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: calm-lost\n  when: {emotion: neutral, below: 0.2}\n  for: 1s\n")
    msgs = timeline(rs, [{"for": "2s", "probs": {"neutral": 0.8}}, {"for": "3s", "probs": {"sad": 0.9}},
                         {"for": "2s", "probs": {"neutral": 0.8}}])
    assert summarize(feed(rs, msgs)[1]) == [("calm-lost", "FIRING", 3600), ("calm-lost", "RESOLVED", 5600)]


def test_sum_of_emotions(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: giving-up\n  when: {sum: [sad, neutral], above: 0.8}\n  for: 3s\n")
    both = timeline(rs, [{"for": "5s", "probs": {"sad": 0.45, "neutral": 0.45}}])
    assert summarize(feed(rs, both)[1]) == [("giving-up", "FIRING", 4000)]
    assert abs(feed(rs, both)[1][0]["value"] - 0.9) < 1e-4
    one = timeline(rs, [{"for": "5s", "probs": {"sad": 0.45, "happy": 0.45}}])
    assert feed(rs, one)[1] == []


def test_review_action(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: review\n  when: {emotion: other, above: 0.4}\n  action: review\n  priority: low\n")
    _, events = feed(rs, timeline(rs, [{"for": "2s", "probs": {"other": 0.5}}]))
    assert [(e["action"], e["priority"], e["status"]) for e in events] == [("REVIEW", "LOW", "FIRING")]


SEQ = "- id: brk\n  when: {sequence: [neutral, fearful, angry], within: 10s, min_prob: 0.5}\n"


def test_sequence_in_order_fires_and_holds_while_last_step_dominates(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(SEQ)
    msgs = timeline(rs, [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "1s", "probs": {"sad": 0.8}},
                         {"for": "2s", "probs": {"fearful": 0.8}}, {"for": "3s", "probs": {"angry": 0.8}},
                         {"for": "2s", "probs": {"happy": 0.8}}])
    _, events = feed(rs, msgs)
    assert summarize(events) == [("brk", "FIRING", 5800), ("brk", "RESOLVED", 8400)]
    assert events[0]["emotions"] == ["neutral", "fearful", "angry"] and events[0]["threshold"] == 0.5


def test_sequence_out_of_order_or_too_slow_or_unsure_does_not_fire(ruleset, timeline, feed) -> None:
    rs = ruleset(SEQ)
    wrong_order = [{"for": "2s", "probs": {"fearful": 0.9}}, {"for": "2s", "probs": {"neutral": 0.9}},
                   {"for": "2s", "probs": {"angry": 0.9}}]
    too_slow = [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "12s", "probs": {"happy": 0.9}},
                {"for": "2s", "probs": {"fearful": 0.9}}, {"for": "2s", "probs": {"angry": 0.9}}]
    unsure = [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "2s", "probs": {"fearful": 0.4}},
              {"for": "2s", "probs": {"angry": 0.9}}]
    for scores in (wrong_order, too_slow, unsure):
        assert feed(rs, timeline(rs, scores))[1] == [], scores


def test_sequence_uses_latest_start_within_the_span(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(SEQ)  # an early neutral is too old, a later neutral restarts the match
    msgs = timeline(rs, [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "9s", "probs": {"happy": 0.9}},
                         {"for": "2s", "probs": {"neutral": 0.9}}, {"for": "2s", "probs": {"fearful": 0.9}},
                         {"for": "2s", "probs": {"angry": 0.9}}])
    assert summarize(feed(rs, msgs)[1]) == [("brk", "FIRING", 15600)]


def test_window_length_changes_smoothing(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: short\n  when: {emotion: angry, above: 0.75}\n  window: 200ms\n"
                 "- id: long\n  when: {emotion: angry, above: 0.75}\n  window: 3s\n")
    msgs = timeline(rs, [{"for": "1s", "probs": {"neutral": 0.9}}, {"for": "1s", "probs": {"angry": 0.95}},
                         {"for": "2s", "probs": {"neutral": 0.9}}])
    assert summarize(feed(rs, msgs)[1]) == [("short", "FIRING", 1200), ("short", "RESOLVED", 2200)]
