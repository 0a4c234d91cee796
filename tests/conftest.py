"""Shared fixtures: the real local broker (session scope, random port), unique names per test,
the reduced/full size switch (TEST_FULL=1), and two suite-wide checks: tests that need the
broker or the embedded ClickHouse carry the ``integration`` marker, and no test leaves Faust
data folders (``*-data``) in the repository root."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

# Not EMOWATCH_FULL: the settings refuse unknown EMOWATCH_* names, and the suite runs the CLI in-process
# (tests/streams/test_settings.py checks the suite's own switches stay out of that namespace)
FULL = os.environ.get("TEST_FULL") == "1"
ROOT = Path(__file__).resolve().parents[1]


def size(reduced, full):
    """``full`` under ``make test-full`` (TEST_FULL=1), else ``reduced`` (``make test``)."""
    return full if FULL else reduced


def full_only(why: str) -> pytest.MarkDecorator:
    """A mark: the test runs under ``make test-full`` only; ``why`` says what ``make test`` does instead."""
    return pytest.mark.skipif(not FULL, reason=f"TEST_FULL=1 only; {why}")


def reduced_only(why: str) -> pytest.MarkDecorator:
    """A mark: the test runs under ``make test`` only; ``why`` says what ``make test-full`` does instead."""
    return pytest.mark.skipif(FULL, reason=f"`make test` only; {why}")


@pytest.fixture(name="size")
def size_fixture():
    """:func:`size` for tests: ``n = size(100, 400)``."""
    return size


@pytest.fixture(scope="session")
def broker():
    """The real local Kafka-compatible broker (tansu) on a random loopback port."""
    from emowatch.streams.local.broker import LocalBroker

    b = LocalBroker()
    b.start()
    yield b
    b.stop()


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes and group ids of one test."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def kafka_settings(broker, unique):
    """KafkaSettings on the session broker with a topic prefix unique to this test."""
    from emowatch.streams.settings import KafkaSettings

    return KafkaSettings(bootstrap_servers=broker.bootstrap_servers, partitions=4, topic_prefix=f"t{unique}.",
                         session_timeout_ms=6000)


@pytest.fixture
def topics(kafka_settings):
    """This test's topics, created on the broker."""
    from emowatch.streams.kafka.admin import ensure_topics
    from emowatch.streams.kafka.clients import topics_for

    t = topics_for(kafka_settings)
    report = ensure_topics(kafka_settings.bootstrap_servers, t)
    assert not report.problems, report.problems
    return t


# --- integration marker: `make test-unit` (-m "not integration") must need no broker or ClickHouse --------------

BROKER_FIXTURES = {"broker", "kafka_settings", "topics"}
# Real parts a test module may use directly; referenced by name so that collection imports nothing.
REAL_PARTS = {("emowatch.streams.local.broker", "LocalBroker"), ("emowatch.streams.local.stack", "LocalStack"),
              ("emowatch.streams.sink.clickhouse", "connect"), ("emowatch.streams.sink.service", "ClickHouseSink")}


def _real_parts(module) -> set[str]:
    return {f"{m}.{n}" for obj in vars(module).values()
            if (m := getattr(obj, "__module__", None), n := getattr(obj, "__qualname__", None)) in REAL_PARTS}


def pytest_collection_modifyitems(config, items):
    missing = []
    for item in items:
        if item.get_closest_marker("integration"):
            continue
        why = sorted(BROKER_FIXTURES & set(getattr(item, "fixturenames", ())))
        module = getattr(item, "module", None)
        why += sorted(_real_parts(module)) if module is not None else []
        if why:
            missing.append(f"{item.nodeid} (uses {', '.join(why)})")
    if missing:
        raise pytest.UsageError("tests that use the broker or the embedded ClickHouse need "
                                "@pytest.mark.integration:\n  " + "\n  ".join(missing))
    _slow_files_first(items)


def _slow_files_first(items) -> None:
    """Files with `slow` tests first, then those with `integration` tests, then the rest; each file's tests
    stay together and in order. pytest-xdist (`--dist loadfile`) hands out files in this order, so the run
    ends on short files and both workers finish at about the same time instead of one running a
    two-minute fault test alone at the end."""
    rank: dict[str, int] = {}
    for item in items:
        path = str(item.path)
        weight = 2 if item.get_closest_marker("slow") else 1 if item.get_closest_marker("integration") else 0
        rank[path] = max(rank.get(path, 0), weight)
    items.sort(key=lambda item: -rank[str(item.path)])  # stable: the order within each rank is kept


# --- nothing in the repository root: Faust's default datadir is "<app id>-data" in the working directory ---------

def _stray_data_dirs() -> set[str]:
    return {p.name for p in ROOT.iterdir() if p.is_dir() and p.name.endswith("-data")}


_BEFORE = pytest.StashKey[set]()


def pytest_sessionstart(session):
    session.config.stash[_BEFORE] = _stray_data_dirs()


@pytest.fixture(autouse=True)
def _no_data_dirs_in_repo_root(request):
    before = _stray_data_dirs()
    yield
    new = _stray_data_dirs() - before
    if new:
        pytest.fail(f"{request.node.nodeid} left Faust data folders in {ROOT}: {sorted(new)} "
                    "(start workers through LocalStack, or chdir to a tmp path)", pytrace=False)


def pytest_sessionfinish(session, exitstatus):
    """Catches folders made in module/session fixtures too, which the per-test check cannot see."""
    new = _stray_data_dirs() - session.config.stash.get(_BEFORE, set())
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: the test run left Faust data folders in {ROOT}: {sorted(new)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
