"""Errors of the rule language: a rule-file error is data (file, line, column, reason)."""

from __future__ import annotations

from emowatch.rules.yamlsource import SourceFileError
from emowatch.topics.errors import DeadLetterError


class RuleFileError(SourceFileError):
    """One problem in a rule file: ``file:line: reason`` (fields in
    :class:`~emowatch.rules.yamlsource.SourceFileError`)."""


class ScoresError(DeadLetterError, ValueError):
    """A FrameScores message that cannot be evaluated (missing class, wrong shape, ...):
    dead-lettered at stage EVALUATE."""

    def __init__(self, reason: str) -> None:
        super().__init__("EVALUATE", reason)

    def __str__(self) -> str:
        return self.reason
