"""Replay test scenarios (tests/streams/replay, tests/integration/test_replay*): rule files and synthetic calls
whose alerts are known by construction (the arithmetic is in the comments)."""
from __future__ import annotations

from typing import Any

from emowatch.rules.loader import parse_ruleset
from emowatch.rules.model import RuleSet
from emowatch.rules.testing import interleave, synthetic_call

T0 = 1_700_000_000_000

BASE = """\
rule_set: diffcase
business_line: "*"
defaults: {window: 1s, hop: 200ms, role: any}
rules:
  - id: angry
    when: {emotion: angry, above: 0.75}
    for: 2s
  - id: fearful
    when: {emotion: fearful, above: 0.6}
    for: 1s
"""


def ruleset(text: str = BASE, **replace: str) -> RuleSet:
    """BASE with literal replacements, e.g. ``ruleset(**{"above: 0.75": "above: 0.85"})``."""
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return parse_ruleset(text, "case.yaml")


def _call(call_id: str, p: float, angry_ms: int, *, line: str = "retail", role: str = "CUSTOMER",
          start: int = T0) -> list[dict[str, Any]]:
    # 1 s calm, angry_ms of anger at probability p (the other 8 classes share the rest), 3 s calm.
    timeline = [(1000, {"neutral": 0.9}), (angry_ms, {"angry": p}), (3000, {"neutral": 0.9})]
    return synthetic_call(call_id, timeline, business_line=line, role=role, event_time=start)


# With a 1 s window and 200 ms hop, the window's angry probability is softmax(mean logits) of the
# calm/angry frames it holds: with 4/5 of it angry it is 0.632 for p=0.8, 0.526 for p=0.7 and 0.901
# for p=0.97 (3/5: 0.692); with all of it angry it is p. So under `above: 0.75` an episode of p=0.8 holds from
# 1 s into the anger to its end (6 s of anger: 5 s; 3 s: 2 s), p=0.97 holds one hop earlier, p=0.7 never.
MILD = [f"mild-{i}" for i in range(3)]       # 6 s at 0.8: fires under 0.75, not under 0.85; 0.6 holds a hop earlier
STRONG = [f"strong-{i}" for i in range(2)]   # 6 s at 0.97: same start under 0.75 and 0.85; 0.6 a hop earlier
WEAK = [f"weak-{i}" for i in range(4)]       # 6 s at 0.7: fires only under 0.6 (from a full window)
SHORT = [f"short-{i}" for i in range(2)]     # 3 s at 0.8: holds 2 s: fires with for 2s, not with for 3s


def calls(start: int = T0, line: str = "retail") -> list[dict[str, Any]]:
    """The scenario's messages, interleaved like live traffic."""
    out = [_call(c, 0.8, 6000, line=line, start=start) for c in MILD]
    out += [_call(c, 0.97, 6000, line=line, start=start) for c in STRONG]
    out += [_call(c, 0.7, 6000, line=line, start=start) for c in WEAK]
    out += [_call(c, 0.8, 3000, line=line, start=start) for c in SHORT]
    return interleave(out)


def mixed_calls(start: int, n: int = 12) -> list[dict[str, Any]]:
    """Calls on two business lines and both roles (an agent's anger can inhibit nothing here, but roles
    interleave within a call), with fear and anger episodes; call i starts i * 700 ms after ``start``."""
    out = []
    for i in range(n):
        line = "retail" if i % 3 else "vip"
        t = start + i * 700
        cust = [(1000, {"neutral": 0.8}), (3000 + 400 * (i % 4), {"angry": 0.9}), (2000, {"fearful": 0.8}),
                (2000, {"neutral": 0.9})]
        agent = [(2000, {"neutral": 0.9}), (2600, {"angry": 0.85 if i % 2 else 0.5}), (1000, {"neutral": 0.9})]
        out.append(synthetic_call(f"mix-{i:02d}", cust, business_line=line, role="CUSTOMER", event_time=t,
                                  noise=0.2, seed=i))
        out.append(synthetic_call(f"mix-{i:02d}", agent, business_line=line, role="AGENT", event_time=t,
                                  noise=0.2, seed=100 + i))
    return interleave(out)
