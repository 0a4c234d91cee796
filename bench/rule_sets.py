"""The rule sets and workloads of ``emowatch bench rules`` (``--rules 10`` / ``--rules 20``).

``RULES_10``: 10 rules scored on one role's windows (thresholds, a sum, a sequence, an agent-only rule, one
inhibit rule), over :func:`workload` (mono tracks without voice activity, every 4th call the agent side).
``RULES_20``: the same 10 rules, unchanged, plus 10 using the conditions of conversations (silence, dead air,
overtalk, interruptions per minute, talk ratio, trend, baseline, count, ``if``/``not_followed_by``, ``all``
across roles; rule-level ``ignore``, ``during``, ``after``, ``speech_only``), over :func:`stereo_workload`
(each call a CUSTOMER and an AGENT track with per-frame ``speech``, turn-taking from
:func:`emowatch.rules.testing.random_turns`). Both workloads have the same number of messages for the same
size (``calls`` tracks x ``seconds``), so their numbers compare.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from emowatch.rules.testing import interleave, random_timeline, random_turns, synthetic_call

__all__ = ["EPISODES", "RULE_SETS", "RULES_10", "RULES_20", "stereo_workload", "workload", "workload_for"]

_HEADER = """\
rule_set: {name}
business_line: "*"
description: {description}
defaults: {{window: 1s, hop: 200ms, role: any, channels: [webhook]}}
rules:
"""

_RULES_10 = """\
  - id: angry-sustained
    when: {emotion: angry, above: 0.75}
    for: 2s
    keep_firing_for: 2s
    cooldown: 30s
    priority: high
  - id: angry-critical
    when: {emotion: angry, above: 0.9}
    window: 2s
    for: 3s
    priority: critical
  - id: fearful
    when: {emotion: fearful, above: 0.6}
    for: 1s
    priority: high
  - id: resigned
    when: {sum: [sad, neutral], above: 0.97}
    for: 3s
    priority: medium
  - id: uncertain-review
    when: {emotion: other, above: 0.4}
    for: 1s
    action: review
    priority: low
  - id: service-break
    when: {sequence: [neutral, fearful, angry], within: 10s, min_prob: 0.5}
    priority: high
  - id: happy-drop
    when: {emotion: happy, below: 0.01}
    window: 3s
    for: 5s
    priority: low
  - id: surprised
    when: {emotion: surprised, above: 0.6}
    for: 1s
    priority: low
  - id: disgusted
    when: {emotion: disgusted, above: 0.6}
    for: 1s
    priority: medium
  - id: agent-angry
    when: {emotion: angry, above: 0.6}
    role: agent
    for: 1s
    priority: high
"""

_CONVERSATION_10 = """\
  - id: customer-silent-after-anger
    when: {silence: customer, min: 5s, after: {emotion: angry, above: 0.7}, within: 3s}
    priority: high
  - id: dead-air
    when: {silence: both, min: 4s}
    priority: medium
  - id: agent-overtalk
    when: {overtalk: agent, min: 1s}
    priority: medium
  - id: interruptions-per-minute
    when: {count: {overtalk: any, min: 500ms}, at_least: 3, within: 1m}
    cooldown: 30s
    priority: medium
  - id: agent-dominates
    when: {talk_ratio: agent, above: 0.8, over: 60s}
    priority: low
  - id: anger-rising
    when: {trend: angry, rises: 0.3, over: 10s}
    role: customer
    window: 2s
    priority: high
  - id: fear-above-baseline
    when: {trend: fearful, above_baseline: 0.4}
    after: 10s
    priority: medium
  - id: repeated-anger
    when: {count: {emotion: angry, above: 0.6}, at_least: 2, within: 1m}
    role: customer
    cooldown: 60s
    priority: high
  - id: anger-not-calmed
    when: {if: {emotion: angry, above: 0.7}, not_followed_by: {emotion: neutral, above: 0.8}, within: 10s}
    ignore: [other, unknown]
    priority: high
  - id: both-upset
    when: {all: [{emotion: angry, above: 0.6, role: customer}, {emotion: neutral, below: 0.3, role: agent}]}
    window: 3s
    during: 5s-50s
    priority: high
"""

_INHIBIT = """\
inhibit:
  - name: critical-mutes-lower
    source: {priority: critical}
    target: {priority: [low, medium, high]}
"""

RULES_10 = (_HEADER.format(name="bench10", description="10 rules of every kind, for emowatch bench rules")
            + _RULES_10 + _INHIBIT)
RULES_20 = (_HEADER.format(name="bench20", description="the 10 rules of bench10 and 10 conditions of "
                                                       "conversations, for emowatch bench rules --rules 20")
            + _RULES_10 + _CONVERSATION_10 + _INHIBIT)
RULE_SETS = {10: ("bench10", RULES_10), 20: ("bench20", RULES_20)}
"""Number of rules -> (rule-set name, YAML)."""

EPISODES = ("angry", "fearful", "sad", "other", "happy", "surprised", "disgusted")


def workload(calls: int, seconds: int, seed: int = 7) -> list[dict[str, Any]]:
    """Interleaved FrameScores of ``calls`` concurrent calls (1 s chunks; every 4th call is the agent side)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        role = "AGENT" if i % 4 == 3 else "CUSTOMER"
        out.append(synthetic_call(f"bench-{i:05d}", random_timeline(rng, seconds, episodes=EPISODES),
                                  business_line="default", role=role, noise=0.3, seed=i))
    return interleave(out)


def stereo_workload(calls: int, seconds: int, seed: int = 7) -> list[dict[str, Any]]:
    """Interleaved FrameScores of ``calls`` concurrent stereo calls: a CUSTOMER and an AGENT track each (same
    ``call_id``, 1 s chunks, per-frame ``speech`` from turn-taking; in a quarter of the calls the agent's turns
    are three times as long), ``2 * calls * seconds`` messages."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(calls):
        customer, agent = random_turns(rng, seconds, agent_weight=3.0 if i % 4 == 1 else 1.0)
        for r, (role, speech) in enumerate((("CUSTOMER", customer), ("AGENT", agent))):
            out.append(synthetic_call(f"bench-{i:05d}", random_timeline(rng, seconds, episodes=EPISODES),
                                      business_line="default", role=role, noise=0.3, seed=2 * i + r, speech=speech))
    return interleave(out)


def workload_for(rules: int, tracks: int, seconds: int) -> list[dict[str, Any]]:
    """The workload of the ``rules``-rule set with ``tracks * seconds`` messages: mono calls for 10, stereo calls
    (``tracks // 2`` of them) for 20."""
    return workload(tracks, seconds) if rules == 10 else stereo_workload(tracks // 2, seconds)
