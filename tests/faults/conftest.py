"""Fixtures of the fault-injection suite (tests/faults/harness.py): a pipeline factory and the clean run."""
from __future__ import annotations

import pytest
from faults.harness import Pipeline, check


@pytest.fixture(scope="session")
def n_calls():
    """6 calls in ``make test``, 20 with EMOWATCH_FULL=1."""
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


@pytest.fixture(scope="session")
def clean(broker, tmp_path_factory, n_calls):
    """The outcome of a run without faults (the same calls): the expectation of every scenario."""
    p = Pipeline(broker, tmp_path_factory.mktemp("clean"), "clean", n_calls)
    try:
        outcome = p.run()
    finally:
        p.close()
    check(outcome, outcome)  # a clean run passes the checks against itself
    assert outcome.alert_ids, "the clean run raised no alert: the suite would prove nothing"
    return outcome
