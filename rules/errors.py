"""Errors of the rule language: a rule-file error is data (file, line, column, reason)."""

from __future__ import annotations

from dataclasses import dataclass, field

from emowatch.topics.errors import DeadLetterError, EmowatchError


@dataclass(eq=True)
class RuleFileError(EmowatchError):
    """One problem in a rule file.

    ``str(err)`` is ``file:line: reason`` (the compiler-style format editors jump to).
    ``line`` and ``column`` are 1-based; ``line`` is 0 when the position is unknown.
    When raised by :func:`parse_ruleset`, ``errors`` lists every problem found in the
    file (this one first).
    """

    file: str
    line: int
    column: int
    reason: str
    errors: list[RuleFileError] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.column, self.reason))


class ScoresError(DeadLetterError, ValueError):
    """A FrameScores message that cannot be evaluated (missing class, wrong shape, ...):
    dead-lettered at stage EVALUATE."""

    def __init__(self, reason: str) -> None:
        super().__init__("EVALUATE", reason)

    def __str__(self) -> str:
        return self.reason
