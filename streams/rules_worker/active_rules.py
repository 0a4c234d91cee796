"""The rule set in force in one rules worker, and what the rules topic's records do to it.

:class:`ActiveRules` holds the active (rule set, compiled rule set) pair; every message is
evaluated by exactly one version. :class:`RulesTopicHandler` receives each record of the
compacted rules topic (from ``emowatch.streams.kafka.rules_feed``), validates it
(``reload.py``, pure) and swaps the active set; a rejected record is dead-lettered with its
original headers and the worker keeps the set it had. No Kafka client here.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from emowatch.rules.compiler import CompiledRuleSet, compile_ruleset
from emowatch.rules.errors import RuleFileError
from emowatch.rules.examples import run_examples
from emowatch.rules.loader import load_ruleset
from emowatch.rules.model import RuleSet
from emowatch.streams.rules_worker.metrics import RulesMetrics
from emowatch.streams.rules_worker.reload import RuleSetRejected, RuleSetSelector, ruleset_from_record
from emowatch.topics.dlq import Source
from emowatch.topics.errors import DeadLetterError, EmowatchError
from emowatch.topics.serde import AvroSerde, SerdeError

log = logging.getLogger("emowatch.rules")


class RulesWorkerError(EmowatchError):
    """The worker cannot start: invalid rules file, or one for another business line."""


def initial_selector(business_line: str, rules_file: Path) -> RuleSetSelector:
    """The selector seeded with ``rules_file`` (validated, its examples run)."""
    try:
        ruleset = load_ruleset(rules_file)
    except RuleFileError as exc:
        raise RulesWorkerError(f"invalid rules file: {exc}") from exc
    failures = run_examples(ruleset)
    if failures:
        raise RulesWorkerError(f"{len(failures)} rule example(s) fail; first: {failures[0]}")
    try:
        return RuleSetSelector(business_line, ruleset, f"file:{rules_file}")
    except ValueError as exc:
        raise RulesWorkerError(str(exc)) from exc


class ActiveRules:
    """The rule set in force. ``current`` is swapped by one reference assignment, and the
    worker reads it once per batch, so every message is evaluated by exactly one version."""

    def __init__(self, selector: RuleSetSelector, wait_s: float) -> None:
        self.selector = selector
        self.current: tuple[RuleSet, CompiledRuleSet] = self._pair()
        self.wait_s = wait_s
        self.ready = asyncio.Event()
        self.swaps = 0

    def _pair(self) -> tuple[RuleSet, CompiledRuleSet]:
        rs = self.selector.active.ruleset
        return rs, compile_ruleset(rs)

    def swap(self) -> None:
        old = self.current[0]
        self.current = self._pair()
        self.swaps += 1
        new = self.current[0]
        log.info("rule set activated", extra={"rule_set": new.rule_set, "rule_version": new.version,
                                              "source": self.selector.active.source, "previous": old.version})

    async def wait_ready(self, caught_up: asyncio.Event) -> None:
        """Hold back scores until the rules topic has been read (at most ``wait_s``)."""
        if not caught_up.is_set():
            try:
                await asyncio.wait_for(caught_up.wait(), self.wait_s)
            except TimeoutError:
                log.error("rules topic not read within %.0fs; evaluating with %s until it is",
                          self.wait_s, self.selector.active.source)
        self.ready.set()


class RulesTopicHandler:
    """Handles one rules-topic record: offer it to the selector, or dead-letter it.

    ``dead_letter(source, error, call_id)`` returns what to await for the dead letter's
    acknowledgement; it is awaited here, and a failure propagates, so the feed retries the
    same record (nothing rejected is lost unrecorded)."""

    def __init__(self, rules: ActiveRules, serde: AvroSerde, metrics: RulesMetrics,
                 dead_letter: Callable[[Source, DeadLetterError, Any], Awaitable[Awaitable[Any]]]) -> None:
        self.rules = rules
        self.serde = serde
        self.metrics = metrics
        self.dead_letter = dead_letter

    async def __call__(self, source: Source) -> None:
        where = f"topic:{source.topic}@{source.offset}"
        try:
            if source.key is None:
                raise RuleSetRejected("DECODE", f"{where}: record without a key (the key must be the rule-set id)")
            if source.value is None:
                ruleset = None  # tombstone: the key's rule set is withdrawn
            else:
                try:
                    record = self.serde.decode(source.value, topic=source.topic, partition=source.partition,
                                               offset=source.offset)
                except SerdeError as exc:
                    raise RuleSetRejected("DECODE", f"{where}: {exc}", cause=exc) from exc
                ruleset = ruleset_from_record(source.key, record)
        except RuleSetRejected as exc:
            self.metrics.rejected.inc()
            log.error("rule set rejected; keeping %s", self.rules.selector.active.source,
                      extra={"reason": exc.reason, "offset": source.offset})
            await (await self.dead_letter(source, exc, None))
            return
        if self.rules.selector.offer(source.key.decode("utf-8", "replace"), ruleset, source.offset or 0, where):
            self.rules.swap()
            if self.rules.ready.is_set():
                self.metrics.swaps.inc()
