"""The broker stopped and started again (issue #17, "Fault-injection suite").

The local broker (tansu, memory storage) loses everything when it stops: topics, records, committed
offsets, consumer groups, the rules tables' changelogs. What applies to it, tested here on a broker of this
test's own (never the session broker, which other tests share) on a fixed port:

* every worker (agent, rules, sink, notifier, gateway) survives an outage of 3 s (10 s with TEST_FULL=1)
  without exiting; the gateway reports ``unhealthy`` on /health while the broker is gone (the other workers'
  /health during the outage is recorded, not asserted: they report their own state, not the broker's);
* after a new broker on the same port, with the topics created again (as ``emowatch topics create`` does),
  the workers reconnect and calls published after the restart flow end to end: the clean run's alert ids,
  every (call, role, seq) once in ClickHouse, every alert notified, nothing stuck.

What a replicated Kafka cluster keeps through a broker restart (acks=all, min.insync.replicas, committed
offsets, changelog topics) is in docs/benchmarks.md, "Faults".
"""
from __future__ import annotations

import time

import pytest
from conftest import size
from faults.harness import Pipeline, check, health, report, wait

from emowatch.streams.kafka.admin import ensure_topics
from emowatch.streams.local.broker import LocalBroker
from emowatch.topics.registry import Topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SECONDS = size(3, 10)


def test_broker_stopped_and_restarted(tmp_path, n_calls, clean):
    t_start = time.monotonic()
    broker = LocalBroker(log_path=tmp_path / "broker.log").start()
    p = Pipeline(broker, tmp_path / "p", "broker", n_calls)
    try:
        p.start_all()
        p.start("gateway")
        port = broker.port
        broker.stop()
        seen: dict[str, set[str]] = {n: set() for n in p.stack.workers}

        def outage_seen() -> bool:
            for n, w in p.stack.workers.items():
                seen[n].add(str((health(w.http_port) or {}).get("status", "no answer")))
            return "unhealthy" in seen["gateway"]

        t0 = time.monotonic()
        wait(lambda: time.monotonic() - t0 >= SECONDS and outage_seen(), "the gateway to report the outage",
             check=p.check)
        broker = LocalBroker(port=port, log_path=tmp_path / "broker2.log").start()
        created = ensure_topics(broker.bootstrap_servers, Topics(prefix=p.stack.topic_prefix, partitions=4))
        assert not created.problems, created.problems
        wait(lambda: (health(p.ports["gateway"]) or {}).get("status") == "healthy", "the gateway to reconnect",
             check=p.check)
        # The agent's idempotent producer keeps the producer id the lost broker gave it: the new broker answers
        # its produce requests UNKNOWN_PRODUCER_ID, librdkafka retries them until message.timeout.ms (5 min)
        # and the agent, which commits only delivered outputs, stands still; its /health fails after
        # EMOWATCH_INFER__DELIVERY_STALL_S without a delivery report (tests/streams/infer/test_service.py), so
        # an orchestrator restarts it. It is restarted here, as an operator restarts it after losing the local
        # broker (Kafka keeps producer state). The rules worker (Faust, aiokafka without idempotence), the sink
        # (consumes only), the notifier (its producer has sent nothing yet) and the gateway reconnect on their own.
        p.restart("agent", "agent")
        p.new_tail()
        outcome = p.run(started=True)
        check(outcome, clean)
        report(f"broker down {SECONDS} s", outcome, total_s=round(time.monotonic() - t_start, 1),
               health_in_outage={n: sorted(s) for n, s in seen.items()})
    finally:
        p.close()
        broker.stop()
