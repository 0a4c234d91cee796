"""Outages of the pipeline's neighbours during a run (issue #17, "Fault-injection suite").

* ClickHouse failing: the relay that stands in for the ClickHouse server (tests/clickhouse_relay.py)
  stops listening - connections refused - once a third of the chunks is scored, for 3 s (10 s with
  TEST_FULL=1) and at least until the sink reports the outage on /health; then it listens again.
* the webhook receiver down: its socket is closed before the first chunk is published, for 3 s (10 s)
  and at least until the notifier has logged a failed delivery attempt; then it listens again on the same
  port. The receiver allows 20 attempts with back-off capped at 1 s (4 s with TEST_FULL=1): no notification
  may give up.

Each run must end as a clean run of the same calls does (tests/faults/harness.py ``check``). With
TEST_FULL=1 each outage has a run of its own; ``make test`` runs both in one run (the webhook down from the
start, ClickHouse once a third of the chunks is scored), a pipeline fewer to start for the suite's time.
"""
from __future__ import annotations

import pytest
from conftest import full_only, reduced_only, size
from faults.harness import check, health, report

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECONDS = size(3, 10)


def clickhouse_down(p) -> None:
    p.relay.stop()
    sink = p.stack.workers["sink"]
    p.hold(SECONDS, lambda: (h := health(sink.http_port)) is not None and h.get("status") == "waiting",
           "the sink to report the ClickHouse outage")
    p.notes["sink_paused_in_outage"] = bool((health(sink.http_port) or {}).get("paused"))
    p.relay.start()


def webhook_down(p) -> None:
    p.receiver.stop()
    p.hold(SECONDS, lambda: p.log_lines("notifier", "failed (attempt") > 0, "a failed delivery attempt")
    p.receiver.start()


FULL_ONLY = full_only("`make test` runs both outages in one run")
REDUCED_ONLY = reduced_only("TEST_FULL=1 runs each outage on its own")


@pytest.mark.parametrize("faults", [
    pytest.param([(clickhouse_down, 1 / 3)], id="clickhouse", marks=FULL_ONLY),
    pytest.param([(webhook_down, 0)], id="webhook", marks=FULL_ONLY),
    pytest.param([(webhook_down, 0), (clickhouse_down, 1 / 3)], id="webhook+clickhouse", marks=REDUCED_ONLY)])
def test_outage(pipeline, clean, faults):
    p = pipeline()
    (fault, at), *then = faults
    outcome = p.run(fault, at=at, then=then)
    check(outcome, clean)
    assert p.log_lines("notifier", "gave up after") == 0
    if webhook_down in (f for f, _ in faults):
        assert p.log_lines("notifier", "failed (attempt") > 0  # the outage was seen
    if clickhouse_down in (f for f, _ in faults):
        assert "sink_paused_in_outage" in p.notes
    report(" + ".join(f"{f.__name__} {SECONDS} s" for f, _ in faults), outcome,
           failed_attempts=p.log_lines("notifier", "failed (attempt"))
