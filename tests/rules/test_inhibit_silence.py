"""Inhibition (Alertmanager inhibit_rules) and silences (event time, not wall-clock)."""

from __future__ import annotations

RULES = """\
- id: crit
  when: {emotion: angry, above: 0.75}
  for: 2s
  priority: critical
- id: warn
  when: {sum: [angry, disgusted], above: 0.6}
  priority: medium
- id: review
  when: {emotion: other, above: 0.4}
  action: review
  priority: low
"""
INHIBIT = """\
inhibit:
  - source: {priority: critical}
    target: {priority: [low, medium, high]}
"""


def test_target_already_firing_is_not_affected_but_new_ones_are_muted(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(RULES, INHIBIT)
    scores = [{"for": "4s", "probs": {"angry": 0.9}}, {"for": "1s", "probs": {"neutral": 0.9}},
              {"for": "4s", "probs": {"angry": 0.9}}]
    events = summarize(feed(rs, timeline(rs, scores))[1])
    # warn fired at 1 s, before crit, and is not retracted; after the dip warn fires again at 5.8 s
    # while crit is only pending (not firing), so it is not muted; crit fires again at 7.8 s.
    assert events == [("warn", "FIRING", 1000), ("crit", "FIRING", 3000), ("crit", "RESOLVED", 4400),
                      ("warn", "RESOLVED", 4400), ("warn", "FIRING", 5800), ("crit", "FIRING", 7800)]


def test_muted_while_inhibited_then_fires_late(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset(RULES, INHIBIT)
    scores = [{"for": "5s", "probs": {"angry": 0.9}}, {"for": "3s", "probs": {"other": 0.7}}]
    # crit keeps firing until 7.4 s (false from 5.4 s, keep_firing_for 2 s)
    rs2 = ruleset(RULES.replace("  priority: critical\n", "  priority: critical\n  keep_firing_for: 2s\n"), INHIBIT)
    events = summarize(feed(rs2, timeline(rs2, scores))[1])
    assert ("crit", "RESOLVED", 7400) in events  # review holds from 5.8 s but is muted until then
    assert [e for e in events if e[0] == "review"] == [("review", "FIRING", 7400)]
    # without inhibition the review fires as soon as its condition holds
    plain = ruleset(RULES)
    review_plain = [e for e in summarize(feed(plain, timeline(plain, scores))[1]) if e[0] == "review"]
    assert review_plain == [("review", "FIRING", 5800)]
    assert [e for e in summarize(feed(rs, timeline(rs, scores))[1]) if e[0] == "review"] == [
        ("review", "FIRING", 5800)]  # crit resolved at 5.4 s already


def test_equal_role_limits_inhibition_to_the_same_speaker(ruleset, timeline, feed) -> None:
    cust = [{"for": "5s", "probs": {"angry": 0.9}}]
    agent = [{"for": "5s", "probs": {"other": 0.7}}]
    for equal, expect_review in (("", False), ("    equal: [call_id, role]\n", True)):
        rs = ruleset(RULES, INHIBIT + equal)
        c, a = timeline(rs, cust), timeline(rs, agent, role="agent")
        # customer chunks first, so crit is firing on the call when the agent's review would fire
        _, events = feed(rs, c + a)
        fired = {(e["rule_id"], e["role"]) for e in events if e["status"] == "FIRING"}
        assert (("review", "AGENT") in fired) is expect_review, equal
        assert ("crit", "CUSTOMER") in fired


def test_inhibit_by_rule_id_and_label(ruleset, timeline, feed) -> None:
    rules = RULES.replace("  priority: medium\n", "  priority: medium\n  labels: {family: anger}\n")
    rules = rules.replace("  priority: low\n", "  priority: low\n  keep_firing_for: 10s\n")
    inhibit = "inhibit:\n  - source: {rules: [review]}\n    target: {labels: {family: anger}}\n"
    scores = [{"for": "2s", "probs": {"other": 0.7}}, {"for": "3s", "probs": {"angry": 0.7}}]
    for extra, warn_fires in ((inhibit, False), ("", True)):
        rs = ruleset(rules, extra)
        ids = [e["rule_id"] for e in feed(rs, timeline(rs, scores))[1] if e["status"] == "FIRING"]
        assert "review" in ids and ("warn" in ids) is warn_fires


def test_silence_by_rule_call_and_business_line_uses_event_time(ruleset, timeline, feed, summarize) -> None:
    t0 = 1_700_000_000_000
    scores = [{"for": "4s", "probs": {"angry": 0.9}}]
    for matcher, silenced in (("rules: [warn]", True), ("rules: [crit]", False), ("call_ids: [call-1]", True),
                              ("call_ids: [other]", False), ("business_lines: [default]", True),
                              ("business_lines: [vip]", False), ("roles: [agent]", False)):
        rs = ruleset(RULES, f"silences:\n  - {{{matcher}, ends_at: {t0 + 10_000}}}\n")
        fired = [e[0] for e in summarize(feed(rs, timeline(rs, scores))[1]) if e[1] == "FIRING"]
        assert ("warn" not in fired) is silenced, matcher
    # a silence that ends at event time t0 + 2.5 s lets the still-active alert fire then (next point: 2.6 s)
    rs = ruleset(RULES, f"silences:\n  - {{rules: [warn], ends_at: {t0 + 2500}}}\n")
    assert ("warn", "FIRING", 2600) in summarize(feed(rs, timeline(rs, scores))[1])
    # starts_at in the future of the call: no effect
    rs = ruleset(RULES, f"silences:\n  - {{rules: [warn], starts_at: {t0 + 60_000}, ends_at: {t0 + 90_000}}}\n")
    assert ("warn", "FIRING", 1000) in summarize(feed(rs, timeline(rs, scores))[1])


def test_silenced_episode_never_emits_resolved(ruleset, timeline, feed) -> None:
    rs = ruleset(RULES, "silences:\n  - {rules: [warn], ends_at: 1800000000000}\n")
    scores = [{"for": "4s", "probs": {"angry": 0.9}}, {"for": "2s", "probs": {"neutral": 0.9}}]
    assert not [e for e in feed(rs, timeline(rs, scores))[1] if e["rule_id"] == "warn"]
