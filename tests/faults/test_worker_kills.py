"""kill -9 and restart of each worker in turn during a run (issue #17, "Fault-injection suite").

One pipeline per victim (tests/faults/harness.py): the agent, the rules worker, the sink, the notifier and
the gateway are each killed with SIGKILL once a third of the chunks is scored, and started again at once (the
gateway on the same port). The run must end as a clean run of the same calls does: the same alert ids, every
(call, role, seq) once in ClickHouse, every alert notified (repeats with the same Idempotency-Key), every
worker healthy with nothing queued.

* gateway: the calls enter through the gateway's HTTP ingest (tests/faults/gateway_client.py), one streamed
  upload per call; the kill comes once the uploads are a third through (not at a third of the scores) and cuts
  every upload in flight, and each client sends its whole call again once
  the restarted gateway answers (the gateway's contract: an upload without a 200 answer may have published a
  prefix; a restarted gateway starts the call again at seq 0, so the chunks sent twice are redeliveries).
* two rules workers of one business line (one consumer group): the one that has handled more score
  messages is killed and not restarted, its partitions move to the survivor, which restores the call
  states from the table's changelog; the alert ids must still be the clean run's.

``make test`` (reduced) runs the agent's kill and the two rules workers' in one run (the agent killed and
restarted once a third of the chunks is scored, the busier rules worker killed at half), and the gateway's;
TEST_FULL=1 runs every scenario on its own.
"""
from __future__ import annotations

import pytest
from conftest import full_only, reduced_only
from faults.harness import check, metric, report, wait

pytestmark = [pytest.mark.integration, pytest.mark.slow]
RECEIVED = "emowatch_rules_received_total"


# reduced (`make test`): the agent (with the two rules workers' scenario, below); the rules worker, sink and
# notifier kills run with TEST_FULL=1 (the per-stage crash tests in tests/integration/ cover them in `make test`),
# to keep the suite's wall time down
FULL_ONLY = full_only("(time) tests/integration/ has a crash test")
ALONE = full_only("`make test` runs it with another scenario")
REDUCED_ONLY = reduced_only("TEST_FULL=1 runs each scenario on its own")


@pytest.mark.parametrize("victim", [pytest.param("agent", marks=ALONE), pytest.param("rules", marks=FULL_ONLY),
                                    pytest.param("sink", marks=FULL_ONLY), pytest.param("notifier", marks=FULL_ONLY)])
def test_kill_9_and_restart(pipeline, clean, victim):
    p = pipeline()
    outcome = p.run(lambda p: p.restart(victim, victim))
    check(outcome, clean)
    report(f"kill -9 {victim}", outcome)


def _kill_gateway_mid_upload(p) -> None:
    """Kill -9 and restart the gateway once the uploads are a third through (timed by the uploads, not the scores:
    under load the agent can lag so far that every upload is over before a third of the chunks is scored)."""
    p.injected.set()  # the uploads may begin
    wait(lambda: (c := getattr(p, "clients", None)) is not None and c.progress() >= 1 / 3,
         "the uploads to be a third through", check=p.check)
    p.notes["upload_progress_at_kill"] = round(p.clients.progress(), 2)
    p.restart("gateway", "gateway")


def test_kill_9_gateway_and_restart(pipeline, clean):
    p = pipeline(gateway=True)
    outcome = p.run(_kill_gateway_mid_upload, at=0)
    check(outcome, clean)
    assert outcome.notes["resent"] > 0, "the kill cut no upload: the scenario tested nothing"
    report("kill -9 gateway", outcome)


def _kill_busier(p) -> None:
    def received():  # the group's first assignment comes after Faust's start-up and recovery of both
        got = {n: metric(p.stack.workers[n].http_port, RECEIVED) for n in ("rules", "rules2")}
        return got if max(got.values()) > 0 else None

    received = wait(received, "a rules worker to receive scores", check=p.check)
    victim = max(received, key=received.get)
    p.notes.update(received_before_kill=received, killed=victim)
    p.kill(victim)


@pytest.mark.parametrize("with_agent_kill", [pytest.param(False, marks=ALONE), pytest.param(True, marks=REDUCED_ONLY)])
def test_two_rules_workers_one_killed(pipeline, clean, with_agent_kill):
    p = pipeline(rules_workers=2)
    if with_agent_kill:
        outcome = p.run(lambda p: p.restart("agent", "agent"), then=[(_kill_busier, 1 / 2)])
    else:
        outcome = p.run(_kill_busier)
    check(outcome, clean)
    survivor = ({"rules", "rules2"} - {p.notes["killed"]}).pop()
    report("kill -9 agent; two rules workers, one killed" if with_agent_kill else "two rules workers, one killed",
           outcome, survivor_received=metric(p.stack.workers[survivor].http_port, RECEIVED))
