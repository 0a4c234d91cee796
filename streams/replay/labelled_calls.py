"""`emowatch rules evaluate`: a rule file over labelled calls -> which rules fired on which call -> per-rule metrics.

Each call of the labelled set (:mod:`emowatch.models.quality.rule_eval`) is evaluated on its own throw-away
state by the replay's engine (:class:`ReplayEngine`: the pure ``rules.step``, batched, each call's messages in
the order a rules worker reads them):

* a recording: scored first as production would score an upload of it (:mod:`.audio_source`);
* a stored call (``call_id``): its scores as the replay reads them from ClickHouse (:mod:`.clickhouse_source`).

A rule *fired* on a call when the engine emitted a FIRING event for it on any role. The rule file's
``silences`` are not applied: they are runtime mutes at event times, not part of what a rule detects (a
note says so); inhibition is part of the rules and applies. No Kafka; ClickHouse only through the client given.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.rule_eval import LabelledCall, fired_rules, rule_report
from emowatch.rules.compiler import compile_ruleset
from emowatch.rules.model import RuleSet
from emowatch.streams.replay.engine import ReplayEngine
from emowatch.streams.replay.params import Scope, Window

__all__ = ["EVAL_ID", "RuleEvaluation", "audio_call_id"]

EVAL_ID = "rule-eval"
"""The ``replay_id`` on the evaluation's events (they never leave the process)."""


def audio_call_id(call: LabelledCall) -> str:
    """The call id a recording is evaluated under: its line in the labelled set (``line-7``)."""
    return f"line-{call.line}"


class RuleEvaluation:
    """One evaluation: ``run_history`` and ``run_audio`` fill what fired per call, ``report`` computes the metrics.

    ``labels`` is the labelled set's file name, for errors (``calls.csv:7: ...``)."""

    def __init__(self, ruleset: RuleSet, labels: str | Path) -> None:
        self.ruleset, self.labels = ruleset, str(labels)
        crs = compile_ruleset(ruleset)
        self.notes: list[str] = []
        if crs.silences:
            self.notes.append(f"{len(crs.silences)} silence(s) of the rule file not applied "
                              "(runtime mutes, not part of what the rules detect)")
            crs = dataclasses.replace(crs, silences=[])
        self.crs = crs
        self.rule_ids = [r.id for r in ruleset.rules]
        self.disabled = [r.id for r in ruleset.rules if not r.enabled]
        if self.disabled:
            self.notes.append(f"disabled rule(s) never fire: {', '.join(self.disabled)}")
        self.fired: dict[int, dict[str, dict[str, Any]]] = {}  # call's line -> rule id -> first firing
        self.models: set[str] = set()
        self.stored_lines: dict[int, str] = {}  # a stored call's line -> its business line(s) in the history
        self.invalid = 0

    def _engine(self) -> ReplayEngine:
        return ReplayEngine([self.crs], replay_id=EVAL_ID, window=Window(0), scope=Scope("*"))

    def _served(self, line: str) -> bool:
        return self.crs.business_line == "*" or line == self.crs.business_line

    def _seen(self, records: Iterator[dict[str, Any]], lines: dict[str, set[str]]) -> Iterator[dict[str, Any]]:
        for rec in records:
            lines.setdefault(rec["call_id"], set()).add(rec.get("business_line") or "")
            model = rec.get("model")
            if model:
                self.models.add(f"{model.get('name', '')}:{model.get('version', '')}")
            yield rec

    def run_history(self, calls: Sequence[LabelledCall], client: Any, database: str) -> None:
        """Evaluate the stored calls (``call_id`` rows) from ClickHouse's ``scores``; :class:`QualityError` naming
        the line of a call with no stored scores, or of a business line the rule set does not serve."""
        from emowatch.streams.replay.clickhouse_source import ClickHouseScores

        rows = [c for c in calls if c.call_id is not None]
        if not rows:
            return
        scores = ClickHouseScores(client, database, Window(0), Scope("*", frozenset(c.call_id for c in rows)))
        lines: dict[str, set[str]] = {}
        engine = self._engine()
        engine.feed(self._seen(iter(scores), lines))
        self.invalid += engine.totals.skipped.get("invalid", 0)
        fired = fired_rules(engine.lanes[0].canonical())
        for c in rows:
            where = f"{self.labels}:{c.line}"
            stored = sorted(lines.get(c.call_id, ()))  # type: ignore[arg-type]
            if not stored:
                raise QualityError(f"{where}: no scores stored for call {c.call_id!r}")
            if c.business_line is not None and stored != [c.business_line]:
                raise QualityError(f"{where}: call {c.call_id!r} is stored with business line "
                                   f"{', '.join(map(repr, stored))}, not {c.business_line!r}")
            if not any(self._served(line) for line in stored):
                raise QualityError(f"{where}: call {c.call_id!r} is of business line "
                                   f"{', '.join(map(repr, stored))}, which the rule set (business line "
                                   f"{self.crs.business_line!r}) does not serve: no rule could fire on it")
            self.fired[c.line] = fired.get(c.call_id, {})  # type: ignore[arg-type]
            self.stored_lines[c.line] = ", ".join(stored)

    def run_audio(self, calls: Sequence[LabelledCall], audio: Any,
                  progress: Callable[[LabelledCall], None] | None = None) -> None:
        """Score and evaluate the recordings (``audio`` rows), one call at a time; ``audio`` is an
        :class:`~emowatch.streams.replay.audio_source.AudioCalls`."""
        engine = self._engine()
        events = engine.lanes[0].events
        for c in calls:
            if c.audio is None:
                continue
            call_id = audio_call_id(c)
            records = audio.score(c.audio, call_id=call_id, business_line=c.business_line or "default", role=c.role,
                                  attributes=c.attributes)
            engine.feed(self._seen(iter(records), {}))
            self.fired[c.line] = fired_rules(events.pop(call_id, [])).get(call_id, {})
            engine.lanes[0].states.pop(call_id, None)  # the call is over; its state is not needed any more
            if progress is not None:
                progress(c)
        self.invalid += engine.totals.skipped.get("invalid", 0)
        counts = audio.scorer.counts
        if counts.rejected or counts.failed:
            self.notes.append(f"{counts.rejected} chunk(s) not decodable and {counts.failed} window(s) not scored "
                              "(the inference agent dead-letters them; the rules saw a gap there)")

    def report(self, calls: Sequence[LabelledCall]) -> dict[str, Any]:
        """The evaluation as a JSON-serialisable dict (deterministic: no wall-clock time in it)."""
        missing = [c.line for c in calls if c.line not in self.fired]
        if missing:
            raise QualityError(f"calls on lines {missing} were not evaluated")
        notes = list(self.notes)
        if self.invalid:
            notes.append(f"{self.invalid} malformed score message(s) skipped (production dead-letters them)")
        calls = [dataclasses.replace(c, business_line=self.stored_lines[c.line]) if c.line in self.stored_lines
                 else c for c in calls]
        rs = self.ruleset
        return {"rule_set": rs.rule_set, "rule_version": rs.version, "business_line": rs.business_line,
                "rules_file": rs.source_name, "labels": self.labels, "models": sorted(self.models),
                **rule_report(calls, self.fired, self.rule_ids, disabled=self.disabled), "notes": notes}
