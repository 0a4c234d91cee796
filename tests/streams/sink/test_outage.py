"""What the sink waits out and what stops it (streams/sink/outage.py): the bounded back-off and the
retryable / fatal classification of errors."""
from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from emowatch.streams.faults import InjectedFault
from emowatch.streams.sink.migrations import MigrationError
from emowatch.streams.sink.outage import NON_RETRYABLE_CODES, Backoff, retryable


def test_backoff_doubles_from_base_up_to_max_and_resets():
    b = Backoff(base_s=0.5, max_s=4.0)
    assert not b.active and b.due(0.0)
    delays = [b.failed(100.0) for _ in range(6)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert b.active and b.failures == 6
    assert not b.due(103.9) and b.due(104.0)  # next try = the last failure + its delay
    b.succeeded()
    assert not b.active and b.failures == 0 and b.due(0.0)
    assert b.failed(7.0) == 0.5 and not b.due(7.4) and b.due(7.5)


def test_backoff_defaults_are_bounded():
    b = Backoff()
    delays = [b.failed(0.0) for _ in range(20)]
    assert delays[0] == 0.5 and max(delays) == 30.0 and delays == sorted(delays)


@pytest.mark.parametrize("exc", [
    OperationalError("Error HTTPConnectionPool(host='127.0.0.1', port=9): Connection refused"),
    ConnectionError("Connection reset by peer"),
    TimeoutError("timed out"),
    InjectedFault("injected fault at sink.after_insert (hit 1)"),
    DatabaseError("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"),
    DatabaseError("Code: 241. DB::Exception: Memory limit (total) exceeded. (MEMORY_LIMIT_EXCEEDED)"),
    DatabaseError("HTTPDriver for http://ch:8123 received ClickHouse error code 503"),
    RuntimeError("something unexpected"),
])
def test_outages_are_retryable(exc):
    assert retryable(exc)


@pytest.mark.parametrize("exc", [
    DatabaseError("Code: 60. DB::Exception: Table emowatch.scores does not exist. (UNKNOWN_TABLE)"),
    DatabaseError("Code: 516. DB::Exception: emowatch: Authentication failed: password is incorrect. "
                  "(AUTHENTICATION_FAILED)"),
    DatabaseError("Code: 497. DB::Exception: emowatch: Not enough privileges. (ACCESS_DENIED)"),
    DatabaseError("Code: 16. DB::Exception: No such column foo in table emowatch.scores. (NO_SUCH_COLUMN_IN_TABLE)"),
    DatabaseError("Code: 53. DB::Exception: Type mismatch in IN or VALUES section. (TYPE_MISMATCH)"),
    ProgrammingError("Unrecognized column 'x' in table scores"),
    DataError("Invalid data for column probs"),
    TypeError("object of type 'NoneType' has no len()"),
    ValueError("could not convert string to float"),
    MigrationError("migration 0001_initial was changed after it was applied"),
])
def test_schema_login_and_data_errors_are_fatal(exc):
    assert not retryable(exc)


def test_every_listed_code_is_fatal_and_a_code_in_a_longer_number_is_not_mistaken():
    for code, name in NON_RETRYABLE_CODES.items():
        assert not retryable(DatabaseError(f"Code: {code}. DB::Exception: ... ({name})"))
    assert retryable(DatabaseError("Code: 600. DB::Exception: something else"))  # 60 is UNKNOWN_TABLE
    assert retryable(DatabaseError("Code: 1600 in a message"))
