"""Fixtures of the fault-injection suite (tests/faults/harness.py): a pipeline factory and the clean run."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from faults.harness import Pipeline, check
from filelock import FileLock


@dataclass(frozen=True)
class Expected:
    """What every faulted run must end with: the alert ids of a clean run of the same calls."""

    alert_ids: frozenset[str]


@pytest.fixture(scope="session")
def n_calls():
    """6 calls in ``make test``, 20 with TEST_FULL=1."""
    from conftest import size

    return size(6, 20)


@pytest.fixture
def pipeline(broker, tmp_path, n_calls, request):
    """``pipeline(gateway=False)``: a fresh :class:`Pipeline` of this test, closed afterwards."""
    made = []

    def make(**kw) -> Pipeline:
        p = Pipeline(broker, tmp_path / f"p{len(made)}", request.node.name[:6].replace("[", ""), n_calls, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def _clean_run(broker, tmp_path_factory, n_calls) -> Expected:
    p = Pipeline(broker, tmp_path_factory.mktemp("clean"), "clean", n_calls)
    try:
        outcome = p.run()
    finally:
        p.close()
    check(outcome, outcome)  # a clean run passes the checks against itself
    assert outcome.alert_ids, "the clean run raised no alert: the suite would prove nothing"
    return Expected(frozenset(outcome.alert_ids))


@pytest.fixture(scope="session")
def clean(broker, tmp_path_factory, n_calls, worker_id) -> Expected:
    """What a run without faults of the same calls ends with: the expectation of every scenario.

    Run once per test session: under pytest-xdist the first worker that needs it runs it (holding a file
    lock in the session's shared temporary folder) and leaves the result there for the others."""
    if worker_id == "master":  # not under xdist
        return _clean_run(broker, tmp_path_factory, n_calls)
    shared = tmp_path_factory.getbasetemp().parent  # the one folder all xdist workers of this session share
    result = shared / "faults-clean-run.json"
    with FileLock(str(shared / "faults-clean-run.lock")):
        if result.exists():
            return Expected(frozenset(json.loads(result.read_text())["alert_ids"]))
        expected = _clean_run(broker, tmp_path_factory, n_calls)
        result.write_text(json.dumps({"alert_ids": sorted(expected.alert_ids)}))
        return expected
