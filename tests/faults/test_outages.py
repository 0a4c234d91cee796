"""Outages of the pipeline's neighbours during a run (issue #17, "Fault-injection suite").

* ClickHouse failing: the relay that stands in for the ClickHouse server (tests/clickhouse_relay.py)
  stops listening - connections refused - once a third of the chunks is scored, for 3 s (10 s with
  TEST_FULL=1) and at least until the sink reports the outage on /health; then it listens again.
* the webhook receiver down: its socket is closed before the first chunk is published, for 3 s (10 s)
  and at least until the notifier has logged a failed delivery attempt; then it listens again on the same
  port. The receiver allows 20 attempts with back-off capped at 1 s (4 s with TEST_FULL=1): no notification
  may give up.

Each run must end as a clean run of the same calls does (tests/faults/harness.py ``check``).
"""
from __future__ import annotations

import pytest
from conftest import size
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


@pytest.mark.parametrize(("fault", "at"), [(clickhouse_down, 1 / 3), (webhook_down, 0)], ids=["clickhouse", "webhook"])
def test_outage(pipeline, clean, fault, at):
    p = pipeline()
    outcome = p.run(fault, at=at)
    check(outcome, clean)
    assert p.log_lines("notifier", "gave up after") == 0
    report(f"{fault.__name__} {SECONDS} s", outcome, failed_attempts=p.log_lines("notifier", "failed (attempt"))
