"""Helpers for the rule tests: tiny rule sets from YAML snippets and synthetic calls."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from emowatch.rules import parse_ruleset, step
from emowatch.rules.examples import example_messages
from emowatch.rules.model import Example, RuleSet


def _ruleset(rules: str, extra: str = "", business_line: str = "*", defaults: str = "") -> RuleSet:
    text = (f"rule_set: test\nbusiness_line: '{business_line}'\n"
            + (f"defaults:\n{textwrap.indent(textwrap.dedent(defaults), '  ')}\n" if defaults else "")
            + "rules:\n" + textwrap.indent(textwrap.dedent(rules), "  ") + "\n"
            + textwrap.dedent(extra))
    return parse_ruleset(text, "test.yaml")


def _timeline(rs: RuleSet, scores: list[dict[str, Any]], call_id: str = "call-1", **kw: Any) -> list[dict[str, Any]]:
    example = Example.model_validate({"name": "t", "scores": scores, **kw})
    return example_messages(example, rs, call_id=call_id)


def _feed(rs: RuleSet, messages: list[dict[str, Any]], state: dict | None = None
          ) -> tuple[dict | None, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    for m in messages:
        state, out = step(state, m, rs)
        events.extend(out)
    return state, events


@pytest.fixture
def ruleset() -> Callable[..., RuleSet]:
    """``ruleset(rules_yaml, extra='', business_line='*', defaults='')`` -> RuleSet."""
    return _ruleset


@pytest.fixture
def timeline() -> Callable[..., list[dict[str, Any]]]:
    """``timeline(rs, [{'for': '2s', 'probs': {...}}, ...], role=..., chunk=..., ...)`` -> FrameScores dicts."""
    return _timeline


@pytest.fixture
def feed() -> Callable[..., tuple[dict | None, list[dict[str, Any]]]]:
    """``feed(rs, messages, state=None)`` -> (state, events)."""
    return _feed


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """(rule_id, status, fired_ms) per event."""
    return [(e["rule_id"], e["status"], e["fired_ms"]) for e in events]


@pytest.fixture
def summarize() -> Callable[[list[dict[str, Any]]], list[tuple[str, str, int]]]:
    return summary
