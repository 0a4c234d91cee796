"""Hot reload of rule sets: validate what arrives on the rules topic and choose the active set.

Pure (no Kafka, no clock): the rules worker's feed hands every record of the compacted
rules topic (key = rule-set id, value = Avro ``RuleSet``) to :func:`ruleset_from_record`
and then to :class:`RuleSetSelector`; the publisher builds records with
:func:`ruleset_record`.

Which rule set a worker of business line ``L`` runs (``docs/rules.md`` section 10):

1. Only sets that *fit* are candidates: ``business_line == L`` (specific) or ``"*"``
   (generic). A ``*`` worker only takes ``*`` sets.
2. A specific set beats a generic one; among equals the newest wins (topic offset order;
   the rules file given at start counts as older than anything on the topic).
3. Each key counts with its latest *valid* value: a rejected record never replaces the
   previous good value of its key, a tombstone (or a value for another business line)
   withdraws the key, and the worker falls back to the next best candidate - in the end
   to the rules file given at start.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.errors import RuleFileError
from emowatch.rules.examples import run_examples
from emowatch.rules.loader import parse_ruleset
from emowatch.rules.model import RuleSet
from emowatch.topics.errors import DeadLetterError

__all__ = ["Candidate", "RuleSetRejected", "RuleSetSelector", "fits", "ruleset_from_record", "ruleset_record"]

FILE_OFFSET = -1
"""Order of the rules file given at start: older than every topic record."""


class RuleSetRejected(DeadLetterError, ValueError):
    """A rules-topic record that must not become active. ``stage`` is a DLQ stage
    (``DECODE`` for unreadable or inconsistent records, ``EVALUATE`` for failing examples)."""

    def __str__(self) -> str:
        return self.reason


def ruleset_record(ruleset: RuleSet, *, published_at_ms: int, source_name: str | None = None,
                   trace_id: str | None = None) -> dict[str, Any]:
    """The Avro ``RuleSet`` record that publishes ``ruleset`` (its exact source text)."""
    if not ruleset.source_text:
        raise ValueError("the rule set has no source text: load it with load_ruleset/parse_ruleset")
    return {"rule_set": ruleset.rule_set, "version": ruleset.version, "business_line": ruleset.business_line,
            "source_yaml": ruleset.source_text,
            "source_name": source_name if source_name is not None else Path(ruleset.source_name).name,
            "published_at": int(published_at_ms), "trace_id": trace_id}


def ruleset_from_record(key: bytes | str | None, record: dict[str, Any], *, run_checks: bool = True) -> RuleSet:
    """Validate a received ``RuleSet`` record again and return the parsed rule set.

    Raises :class:`RuleSetRejected` when the YAML does not validate, when the record's
    ``rule_set``/``business_line``/``version`` or the message key disagree with the YAML, or
    (``run_checks``) when one of the file's examples fails with this worker's engine.
    """
    name = record.get("source_name") or "<rules topic>"
    where = f"rules topic record {record.get('rule_set')!r} ({name})"
    try:
        ruleset = parse_ruleset(record.get("source_yaml") or "", name)
    except RuleFileError as exc:
        more = f" (+{len(exc.errors) - 1} more)" if len(exc.errors) > 1 else ""
        raise RuleSetRejected("DECODE", f"{where}: invalid rule set: {exc}{more}") from exc
    key_text = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    for field, claimed, actual in (("rule_set", record.get("rule_set"), ruleset.rule_set),
                                   ("business_line", record.get("business_line"), ruleset.business_line),
                                   ("version", record.get("version"), ruleset.version)):
        if claimed != actual:
            raise RuleSetRejected("DECODE", f"{where}: record field {field}={claimed!r} but the YAML gives {actual!r}")
    if key_text is not None and key_text != ruleset.rule_set:
        raise RuleSetRejected("DECODE",
                              f"{where}: message key {key_text!r} is not the rule-set id {ruleset.rule_set!r}")
    if run_checks:
        failures = run_examples(ruleset)
        if failures:
            raise RuleSetRejected("EVALUATE", f"{where}: {len(failures)} example(s) fail: {failures[0]}")
    try:
        compile_ruleset(ruleset)
    except Exception as exc:  # a valid file the compiler cannot handle is a bug; never activate it
        raise RuleSetRejected("EVALUATE", f"{where}: cannot compile: {type(exc).__name__}: {exc}") from exc
    return ruleset


def fits(worker_line: str, ruleset_line: str) -> bool:
    """Whether a rule set for ``ruleset_line`` may run on a worker of ``worker_line``."""
    return ruleset_line == "*" or ruleset_line == worker_line


@dataclass(frozen=True)
class Candidate:
    """A rule set that may run on this worker, with where it came from."""

    ruleset: RuleSet
    offset: int
    """Topic offset of the record (``FILE_OFFSET`` for the rules file given at start)."""
    source: str
    """``file:<path>`` or ``topic:<topic>@<offset>`` (for logs and /health)."""
    specific: bool
    """The set names this worker's business line (beats a ``*`` set)."""

    @property
    def rank(self) -> tuple[bool, int]:
        return (self.specific, self.offset)


class RuleSetSelector:
    """Keeps the valid candidates per rules-topic key and answers which one is active."""

    def __init__(self, business_line: str, initial: RuleSet, initial_source: str) -> None:
        if not fits(business_line, initial.business_line):
            raise ValueError(f"rule set {initial.rule_set!r} ({initial_source}) serves business line "
                             f"{initial.business_line!r}; a worker for {business_line!r} needs a rule set for "
                             f"{business_line!r} or '*'")
        self.business_line = business_line
        self.fallback = self._candidate(initial, FILE_OFFSET, initial_source)
        self.by_key: dict[str, Candidate] = {}
        self.active = self.fallback

    def _candidate(self, ruleset: RuleSet, offset: int, source: str) -> Candidate:
        specific = ruleset.business_line != "*" or self.business_line == "*"
        return Candidate(ruleset, offset, source, specific)

    def offer(self, key: str, ruleset: RuleSet | None, offset: int, source: str) -> bool:
        """Record the latest valid value of ``key`` (``None`` = tombstone or withdrawn).

        Returns whether the active rule set changed (another rule set or another version).
        A set for another business line withdraws ``key`` like a tombstone.
        """
        if ruleset is not None and fits(self.business_line, ruleset.business_line):
            self.by_key[key] = self._candidate(ruleset, offset, source)
        else:
            self.by_key.pop(key, None)
        best = max([self.fallback, *self.by_key.values()], key=lambda c: c.rank)
        before = self.active.ruleset
        self.active = best
        return (best.ruleset.rule_set, best.ruleset.version) != (before.rule_set, before.version)

    def describe(self) -> dict[str, Any]:
        """The active set and the candidates (for /health)."""
        a = self.active
        return {"rule_set": a.ruleset.rule_set, "rule_version": a.ruleset.version,
                "rules_business_line": a.ruleset.business_line, "rules_source": a.source,
                "candidates": sorted(f"{k}@{c.offset}:{c.ruleset.version}" for k, c in self.by_key.items())}
