"""What the sink does when ClickHouse fails: which errors it waits out, and how long it waits.

Retryable (the sink pauses its partitions, keeps polling so it stays in the consumer group, and retries
the same pinned batch after a bounded exponential back-off, for as long as it takes): everything not
listed below - connection refused or reset, timeouts, DNS failures, HTTP 5xx, a server that is starting,
``TOO_MANY_PARTS``, memory limits, any ``DB::Exception`` code not listed.

Not retryable (the sink stops with an error, offsets uncommitted, and its orchestrator's restart policy
or an operator takes over): a schema that does not match the rows (unknown database, table or column,
type mismatch, unparsable value - retrying the same rows cannot succeed), a rejected login or missing
grant (a configuration error), rows the driver cannot serialise (``TypeError``/``ValueError``,
``clickhouse_connect`` ``ProgrammingError``/``DataError``), and an inconsistent migration record.
"""
from __future__ import annotations

import re

from clickhouse_connect.driver.exceptions import DataError, ProgrammingError

from emowatch.streams.sink.migrations import MigrationError

# ClickHouse error codes (src/Common/ErrorCodes.cpp) that no retry can fix.
NON_RETRYABLE_CODES = {
    6: "CANNOT_PARSE_TEXT", 8: "THERE_IS_NO_COLUMN", 10: "NOT_FOUND_COLUMN_IN_BLOCK", 16: "NO_SUCH_COLUMN_IN_TABLE",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED", 44: "ILLEGAL_COLUMN", 47: "UNKNOWN_IDENTIFIER", 53: "TYPE_MISMATCH",
    60: "UNKNOWN_TABLE", 62: "SYNTAX_ERROR", 70: "CANNOT_CONVERT_TYPE", 81: "UNKNOWN_DATABASE", 192: "UNKNOWN_USER",
    497: "ACCESS_DENIED", 516: "AUTHENTICATION_FAILED",
}
_CODE = re.compile(r"\bCode: (\d+)\b")


def retryable(exc: BaseException) -> bool:
    """Whether the sink should wait and retry after ``exc`` (see the module docstring)."""
    if isinstance(exc, (ProgrammingError, DataError, TypeError, ValueError, MigrationError)):
        return False
    m = _CODE.search(str(exc))
    return not (m and int(m.group(1)) in NON_RETRYABLE_CODES)


class Backoff:
    """Bounded exponential back-off: ``base_s``, doubled after each failure, at most ``max_s``."""

    def __init__(self, base_s: float = 0.5, max_s: float = 30.0) -> None:
        self.base_s, self.max_s = base_s, max_s
        self.failures = 0
        self.next_try = 0.0

    @property
    def active(self) -> bool:
        return self.failures > 0

    def delay(self) -> float:
        return min(self.max_s, self.base_s * 2 ** max(0, self.failures - 1))

    def failed(self, now: float) -> float:
        self.failures += 1
        self.next_try = now + self.delay()
        return self.delay()

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def succeeded(self) -> None:
        self.failures, self.next_try = 0, 0.0
