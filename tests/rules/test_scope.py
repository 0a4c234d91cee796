"""Scope filters: role, business line, call attributes."""

from __future__ import annotations

ANGER = [{"for": "3s", "probs": {"angry": 0.9}}]


def fired(feed, rs, msgs) -> list[str]:
    return [e["rule_id"] for e in feed(rs, msgs)[1] if e["status"] == "FIRING"]


def test_role_filter(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: cust\n  role: customer\n  when: {emotion: angry, above: 0.75}\n"
                 "- id: agent\n  role: [agent, mixed]\n  when: {emotion: angry, above: 0.75}\n"
                 "- id: any\n  when: {emotion: angry, above: 0.75}\n")
    assert fired(feed, rs, timeline(rs, ANGER, role="customer")) == ["cust", "any"]
    assert fired(feed, rs, timeline(rs, ANGER, role="agent")) == ["agent", "any"]
    assert fired(feed, rs, timeline(rs, ANGER, role="mixed")) == ["agent", "any"]


def test_default_role_from_defaults(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: a\n  when: {emotion: angry, above: 0.75}\n", defaults="role: agent\n")
    assert fired(feed, rs, timeline(rs, ANGER, role="customer")) == []
    assert fired(feed, rs, timeline(rs, ANGER, role="agent")) == ["a"]


def test_business_line_filter_in_a_catch_all_set(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: vip\n  business_lines: vip\n  when: {emotion: angry, above: 0.75}\n")
    assert fired(feed, rs, timeline(rs, ANGER, business_line="vip")) == ["vip"]
    assert fired(feed, rs, timeline(rs, ANGER, business_line="retail")) == []


def test_attribute_filter(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: a\n  attributes: {customer_tier: [vip, gold], region: eu}\n"
                 "  when: {emotion: angry, above: 0.75}\n")
    assert fired(feed, rs, timeline(rs, ANGER, attributes={"customer_tier": "gold", "region": "eu"})) == ["a"]
    assert fired(feed, rs, timeline(rs, ANGER, attributes={"customer_tier": "gold", "region": "us"})) == []
    assert fired(feed, rs, timeline(rs, ANGER, attributes={"customer_tier": "vip"})) == []


def test_attributes_changing_mid_call_resolve_the_alert(ruleset, timeline, feed, summarize) -> None:
    rs = ruleset("- id: a\n  attributes: {customer_tier: vip}\n  when: {emotion: angry, above: 0.75}\n")
    msgs = timeline(rs, [{"for": "4s", "probs": {"angry": 0.9}}], attributes={"customer_tier": "vip"})
    msgs[-1]["attributes"] = {"customer_tier": "standard"}
    assert summarize(feed(rs, msgs)[1]) == [("a", "FIRING", 1000), ("a", "RESOLVED", 3200)]


def test_disabled_rule_never_fires(ruleset, timeline, feed) -> None:
    rs = ruleset("- id: a\n  enabled: false\n  when: {emotion: angry, above: 0.75}\n"
                 "- id: b\n  when: {emotion: angry, above: 0.75}\n")
    assert fired(feed, rs, timeline(rs, ANGER)) == ["b"]
