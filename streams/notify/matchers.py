"""Alertmanager label matchers: ``name="value"``, ``name!="value"``, ``name=~"regex"``, ``name!~"regex"``.

Regexes are anchored at both ends (``=~"HIGH|CRITICAL"`` means ``^(?:HIGH|CRITICAL)$``) and use
Python's ``re`` syntax. A label an alert does not have matches as the empty string, as in
Alertmanager (``team=""`` matches alerts without a ``team`` label). Values may be double-quoted
(``\\"``, ``\\\\`` and ``\\n`` are unescaped, other backslashes are kept so ``"\\d+"`` is a regex) or bare.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from emowatch.streams.notify.errors import MatcherError

__all__ = ["OPERATORS", "Matcher", "matches_all", "parse_matcher", "parse_matchers"]

OPERATORS = ("=", "!=", "=~", "!~")
_SYNTAX = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Matcher:
    """One parsed matcher; :meth:`matches` tests a label set."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self._regex is not None
        found = self._regex.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def parse_matcher(text: str) -> Matcher:
    """Parse one matcher string; :class:`MatcherError` with the reason otherwise."""
    if not isinstance(text, str):
        raise MatcherError(f"a matcher is a string such as 'priority=\"HIGH\"', got {text!r}")
    found = _SYNTAX.match(text)
    if not found:
        raise MatcherError(f"invalid matcher {text!r}: expected name=\"value\" with =, !=, =~ or !~")
    name, op, raw = found.groups()
    value = _unquote(raw, text) if raw.startswith('"') else raw
    if not raw.startswith('"') and '"' in raw:
        raise MatcherError(f"invalid matcher {text!r}: unbalanced quotes")
    regex = None
    if op in ("=~", "!~"):
        try:
            regex = re.compile(f"(?:{value})")
        except re.error as exc:
            raise MatcherError(f"invalid regex in matcher {text!r}: {exc}") from None
    return Matcher(name, op, value, regex)


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    """Parse several matcher strings (all must match: they are ANDed)."""
    return tuple(parse_matcher(t) for t in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher matches ``labels`` (true for no matchers)."""
    return all(m.matches(labels) for m in matchers)


def _unquote(raw: str, text: str) -> str:
    if len(raw) < 2 or not raw.endswith('"'):
        raise MatcherError(f"invalid matcher {text!r}: unterminated quoted value")
    out: list[str] = []
    body = raw[1:-1]
    i = 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"\\": "\\", '"': '"', "n": "\n"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if char == '"' or (char == "\\" and i + 1 == len(body)):
            raise MatcherError(f"invalid matcher {text!r}: unescaped quote or backslash in the value")
        out.append(char)
        i += 1
    return "".join(out)
