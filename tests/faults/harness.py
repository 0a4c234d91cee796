"""The fault-injection suite's harness: the whole local pipeline, a run of N calls, a fault injected
mid-run, and the four checks of issue #17.

A :class:`Pipeline` is a :class:`LocalStack` on the session broker (its own topic prefix) with

* the inference agent (demo model), one rules worker (``--business-line *``, the bundled default rules),
* the ClickHouse sink in server mode against :class:`ClickHouseRelay` (ClickHouse's HTTP interface answered
  by an embedded chDB in the test process): the test reads the tables while the sink runs, and stops the
  "server" (connections refused) to simulate a ClickHouse outage,
* the notifier with one signed webhook receiver, :class:`Receiver`, on a fixed port: it records every
  request (HMAC verified, Idempotency-Key kept) and can be stopped (connections refused) and started again,
* the gateway only where a scenario needs it.

:meth:`Pipeline.run` publishes the calls (bundled samples, repeated with suffixed ids: 6 calls, 20 with
TEST_FULL=1) at a multiple of real time in a background thread, calls ``fault(pipeline)`` once the
agent has scored a fraction of the chunks, then waits (polling with deadlines) until every group has no lag
and returns an :class:`Outcome`. :func:`check` asserts the four properties against a clean run's outcome:
the alert-id set is the clean run's; every (call_id, role, seq) is in ClickHouse exactly once (``scores
FINAL``, and the same key set); every FIRING alert was notified, and repeats carry the first delivery's
Idempotency-Key; every worker is alive, healthy and has nothing queued. Scenarios, measured numbers and what
a broker restart loses (local broker vs a replicated Kafka cluster): docs/benchmarks.md, "Faults".
"""
from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from clickhouse_relay import ClickHouseRelay
from conftest import FULL, ROOT, size
from faults.gateway_client import GatewayClients
from notify_helpers import verified, write_config

from emowatch.streams.kafka.audio_publisher import AudioPublisher, CallSpec, call_records
from emowatch.streams.kafka.clients import group_name, topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.broker import free_port
from emowatch.streams.local.demo import load_calls, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.resources import default_rules_file, demo_model_dir

TIMEOUT = 240.0
MAX_BACKOFF = size("1s", "4s")  # the notifier's webhook retries outlast the webhook outage (3 s, 10 s)
REALTIME = 2.0  # calls stream at twice real time: the 14 s sample takes 7 s to publish
RULES_ARGS = ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())]
DATABASE = "emowatch"
READY = {"agent": lambda h: bool(h.get("partitions")), "notifier": lambda h: h.get("assigned_partitions", 0) > 0,
         "rules": lambda h: h.get("status") == "ok", "sink": lambda h: h.get("status") == "ok",
         "gateway": lambda h: h.get("status") == "healthy"}


def wait(cond, what: str, timeout: float = TIMEOUT, check=None):
    """Poll ``cond()`` until truthy (returned) or fail at the deadline; ``check()`` raises on a dead worker."""
    deadline = time.monotonic() + timeout
    while True:
        if check is not None:
            check()
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.1)  # polling interval of a deadline loop


def health(port: int) -> dict | None:
    """A worker's /health JSON whatever its status code, None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as err:
        try:
            return json.loads(err.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def metric(port: int, name: str) -> float:
    """A worker's Prometheus sample ``name`` (without labels) from /metrics; 0 while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.split(" ")[0] == name)


def calls_for(n: int) -> list[CallSpec]:
    """``n`` calls: the bundled samples in turn, each copy with its own call id."""
    base = load_calls()
    return [CallSpec(f"{c.call_id}-{i // len(base)}", c.path, c.business_line, c.role)
            for i, c in ((i, base[i % len(base)]) for i in range(n))]


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """The notifier's webhook receiver on a fixed 127.0.0.1 port; ``stop()`` closes the socket (refused
    connections, as a receiver that is down), ``start()`` listens again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.deliveries: list[Delivery] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        rec = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rec.deliveries.append(Delivery(dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, name="fault-receiver", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None


@dataclass
class Outcome:
    """What a run left: alert events, ClickHouse's score keys, the receiver's deliveries, worker health."""

    calls: list[CallSpec]
    alerts: list[dict]
    score_counts: dict[tuple[str, str, int], int]
    deliveries: list[Delivery]
    health: dict[str, dict | None]
    seconds: float
    notes: dict = field(default_factory=dict)

    @property
    def alert_ids(self) -> set[str]:
        return {a["alert_id"] for a in self.alerts}


class Pipeline:
    def __init__(self, broker, data_dir: Path, name: str, n_calls: int, *, gateway: bool = False,
                 rules_workers: int = 1, realtime: float = REALTIME) -> None:
        self.realtime, self.gateway, self.rules_workers = realtime, gateway, rules_workers
        self.stack = LocalStack(data_dir=data_dir, broker=broker, topic_prefix=f"f{name}{uuid.uuid4().hex[:6]}.")
        self.stack.start()
        self.kafka = self.stack.kafka_settings()
        self.topics = topics_for(self.kafka)
        self.calls = calls_for(n_calls)
        self.expected = {(c.call_id, c.role, q) for c in self.calls
                         for q in range(len(call_records(c, start_time_ms=0)))}
        self.relay = ClickHouseRelay(data_dir / "clickhouse", free_port()).start()
        self.receiver = Receiver().start()
        # max_attempts is at most 20; the jittered back-off capped at MAX_BACKOFF retries for ~6-12 s (1 s, the
        # 3 s outages) or ~25-45 s (4 s, the 10 s outages: with 1 s a notification gave up in a 10 s outage)
        self.notify_config, self.notify_secrets = write_config(data_dir, self.receiver.port, group_wait="0s",
                                                               group_interval="1s", max_attempts=20,
                                                               max_backoff=MAX_BACKOFF)
        self.new_tail()
        self._errors: list[BaseException] = []
        self.notes: dict = {}
        self.ports: dict[str, int] = {}  # a restarted worker listens on its predecessor's port
        self.injected = threading.Event()  # a fault injected before the first chunk is on (hold() sets it)

    def new_tail(self) -> None:
        """Read the scores, alerts and dead letters from here on (a fresh reader: after a broker restart)."""
        if getattr(self, "tail", None) is not None:
            self.tail.close()
        self.tail = TopicTail(self.kafka, {self.topics.scores: "FrameScores", self.topics.alerts: "Alert",
                                           self.topics.dlq: "DeadLetter"})
        self.got = {self.topics.scores: [], self.topics.alerts: [], self.topics.dlq: []}

    # -- workers ----------------------------------------------------------------------------------
    def start(self, role: str, name: str | None = None, wait_ready: bool = True):
        """Start the worker of ``role`` (agent, rules, sink, notifier, gateway) as ``name`` (default: role)."""
        name = name or role
        env = {}
        if role == "agent":
            args, env = ["infer"], {"EMOWATCH_MODEL__MODEL": str(demo_model_dir())}
        elif role == "rules":
            args = RULES_ARGS
        elif role == "sink":
            args, env = ["sink"], {"EMOWATCH_SINK__CLICKHOUSE_URL": f"http://127.0.0.1:{self.relay.port}",
                                   "EMOWATCH_SINK__BATCH_ROWS": "20", "EMOWATCH_SINK__BATCH_MS": "200"}
        elif role == "notifier":
            args = ["notify", "--config", str(self.notify_config)]
            env = {"EMOWATCH_NOTIFY__SECRETS_FILE": str(self.notify_secrets)}
        elif role == "gateway":  # ingest only: no model side (uploads are not analysed)
            args, env = ["gateway"], {"EMOWATCH_GATEWAY__ANALYZE": "false"}
        else:
            raise ValueError(role)
        w = self.stack.start_worker(name, args, env=env, port=self.ports.get(name))
        self.ports[name] = w.http_port
        w.role = role
        if wait_ready:
            self.wait_ready(name)
        return w

    def wait_ready(self, name: str) -> None:
        w = self.stack.workers[name]
        wait(lambda: (h := health(w.http_port)) is not None and READY[w.role](h), f"{name} ready", check=self.check)

    def kill(self, name: str) -> None:
        assert self.stack.stop_worker(name, kill=True) == -9

    def restart(self, name: str, role: str, wait_ready: bool = True) -> None:
        """kill -9 ``name``, start a new worker of ``role`` under the same name."""
        self.kill(name)
        self.start(role, name, wait_ready=wait_ready)

    def start_all(self) -> None:
        for role in ("sink", "rules", "agent", "notifier") + (("gateway",) if self.gateway else ()):
            self.start(role, wait_ready=False)
        for i in range(2, self.rules_workers + 1):  # more workers of the same business line: one group
            self.start("rules", f"rules{i}", wait_ready=False)
        for name in list(self.stack.workers):  # started together, waited for together
            self.wait_ready(name)

    def log_lines(self, name: str, msg: str) -> int:
        """How many lines of the worker ``name``'s log contain ``msg``."""
        path = self.stack.data_dir / "logs" / f"{name}.log"
        return sum(msg in line for line in path.read_text(errors="replace").splitlines()) if path.exists() else 0

    def hold(self, seconds: float, seen, what: str) -> None:
        """Keep a fault on until ``seconds`` have passed and ``seen()`` holds (the workers noticed it)."""
        t0 = time.monotonic()
        self.injected.set()
        wait(lambda: time.monotonic() - t0 >= seconds and seen(), what, check=self.check)

    def check(self) -> None:
        if self._errors:
            raise self._errors[0]
        self.stack.check_workers()

    # -- the run ----------------------------------------------------------------------------------
    def _publish(self) -> None:
        try:
            if self.gateway:  # through the gateway's HTTP ingest, resending a call whose upload was cut
                port = self.ports["gateway"]
                self.clients = GatewayClients(f"http://127.0.0.1:{port}", self.calls, self.realtime,
                                              lambda: (health(port) or {}).get("status") == "healthy")
                self.clients.run()
                self.notes.update(self.clients.notes())
            else:
                AudioPublisher(self.kafka).publish_calls(self.calls, realtime=self.realtime)
        except BaseException as exc:  # noqa: BLE001 - raised by check()
            self._errors.append(exc)

    def _collect(self, cond) -> None:
        """Read the topics on until ``cond(everything read so far)``."""
        got = self.tail.collect(lambda o: cond({k: self.got[k] + v for k, v in o.items()}), TIMEOUT,
                                check=self.check)
        for k, v in got.items():
            self.got[k] += v

    def run(self, fault=None, at: float = 1 / 3, started: bool = False, then=()) -> Outcome:
        """Start the workers (unless ``started``), publish the calls, call ``fault(self)`` once a fraction ``at`` of
        the chunks is scored (at 0: in its own thread, the first chunk published once the fault is on), then each
        ``(fault, at)`` of ``then`` (at > 0, rising) likewise, wait until everything is caught up; the outcome."""
        t0 = time.monotonic()
        if not started:
            self.start_all()
        publisher = threading.Thread(target=self._publish, name="publisher", daemon=True)
        faulting = None
        if fault is not None and at == 0:
            faulting = threading.Thread(target=self._fault, args=(fault,), name="fault", daemon=True)
            faulting.start()
            wait(lambda: self.injected.is_set() or not faulting.is_alive(), "the fault to be on", check=self.check)
        publisher.start()
        for n, (fault_n, at_n) in enumerate(([(fault, at)] if fault is not None and at > 0 else []) + list(then)):
            assert 0 < at_n < 1, f"a further fault's fraction must be in (0, 1), got {at_n}"
            self._collect(lambda o, at_n=at_n: len(o[self.topics.scores]) >= len(self.expected) * at_n)
            self.notes[f"scored_before_fault{f'_{n + 1}' if n else ''}"] = len(self.got[self.topics.scores])
            fault_n(self)
        publisher.join(TIMEOUT)
        assert not publisher.is_alive(), "the publisher did not finish"
        if faulting is not None:
            faulting.join(TIMEOUT)
            assert not faulting.is_alive(), "the fault did not end"
        self.check()
        self.settle()
        return self.outcome(time.monotonic() - t0)

    def _fault(self, fault) -> None:
        try:
            fault(self)
        except BaseException as exc:  # noqa: BLE001 - raised by check()
            self._errors.append(exc)
        finally:
            self.injected.set()

    def settle(self) -> None:
        """Every group caught up: audio scored, scores evaluated and stored, alerts stored and notified."""
        k, t = self.kafka, self.topics
        for group, topics in ((group_name(k, "emowatch-infer"), [t.audio]),
                              (f"{k.topic_prefix}emowatch-rules-all", [t.scores]),
                              (group_name(k, "emowatch-sink"), [t.scores, t.alerts]),
                              (group_name(k, "emowatch-notify"), [t.alerts])):
            wait_for_lag_zero(self.stack, group, topics, TIMEOUT)
        out = self.tail.catch_up({t.scores: [], t.alerts: [], t.dlq: []}, TIMEOUT)
        for key, v in out.items():
            self.got[key] += v

    def score_counts(self) -> dict[tuple[str, str, int], int]:
        rows = self.relay.client.query(f"SELECT call_id, role, seq, count() FROM {DATABASE}.scores FINAL "
                                       "GROUP BY call_id, role, seq").result_rows
        return {(c, r, int(s)): int(n) for c, r, s, n in rows}

    def outcome(self, seconds: float) -> Outcome:
        self.check()
        with self.relay.lock:
            counts = self.score_counts()
        return Outcome(self.calls, [a for a in self.got[self.topics.alerts] if a], counts,
                       list(self.receiver.deliveries),
                       {n: health(w.http_port) for n, w in self.stack.workers.items()}, seconds, dict(self.notes))

    def close(self) -> None:
        self.tail.close()
        self.stack.stop()
        self.receiver.stop()
        self.relay.close()


def report(scenario: str, outcome: Outcome, **more) -> None:
    """Print a scenario's numbers and append them to $TEST_ARTIFACTS/faults/runs.jsonl (default
    .emowatch/test-artifacts/faults/): measured, never asserted (docs/benchmarks.md "Faults")."""
    contents = [(b["group_key"], b["status"], tuple(sorted((x["alert_id"], x["status"]) for x in b["alerts"])))
                for b in (json.loads(d.body) for d in outcome.deliveries)]
    row = {"scenario": scenario, "calls": len(outcome.calls), "full": FULL, "wall_s": round(outcome.seconds, 1),
           "alert_events": len(outcome.alerts), "alert_ids": len(outcome.alert_ids),
           "deliveries": len(outcome.deliveries), "repeats": len(contents) - len(set(contents)),
           "notes": outcome.notes, **more}
    print(f"\nfault scenario {json.dumps(row)}")
    base = os.environ.get("TEST_ARTIFACTS")
    folder = Path(base) / "faults" if base else ROOT / ".emowatch" / "test-artifacts" / "faults"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "runs.jsonl", "a") as f:
        f.write(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **row}) + "\n")


# -- the checks -------------------------------------------------------------------------------------

def idle(h: dict | None) -> str | None:
    """Why a worker with /health ``h`` is not healthy and idle, None when it is."""
    if h is None:
        return "no /health answer"
    if h.get("status") not in ("ok", "healthy", None):
        return f"status {h.get('status')}: {h.get('error') or h.get('problems')}"
    busy = {k: h.get(k) for k in ("queued", "buffered_rows", "in_flight_notifications", "pending_alerts")
            if h.get(k)}
    return f"still busy: {busy}" if busy else None


def check(outcome: Outcome, clean) -> None:
    """The four properties of issue #17 for a faulted run against the clean run of the same calls
    (an :class:`Outcome`, or the clean run's alert ids: ``clean.alert_ids``)."""
    # 1. the alert-id set is the clean run's
    assert outcome.alert_ids == clean.alert_ids, (
        f"missing {sorted(clean.alert_ids - outcome.alert_ids)}, extra {sorted(outcome.alert_ids - clean.alert_ids)}")
    # 2. every (call, role, seq) in ClickHouse exactly once
    expected = {(c.call_id, c.role, q) for c in outcome.calls for q in range(len(call_records(c, start_time_ms=0)))}
    assert set(outcome.score_counts) == expected, (sorted(expected - set(outcome.score_counts))[:10],
                                                   sorted(set(outcome.score_counts) - expected)[:10])
    assert {k: n for k, n in outcome.score_counts.items() if n != 1} == {}
    # 3. every FIRING alert notified; a repeat carries the same Idempotency-Key as the first delivery
    notified, keys = set(), defaultdict(set)
    for d in outcome.deliveries:
        body = verified(d)
        notified |= {a["alert_id"] for a in body["alerts"]}
        content = (body["receiver"], body["group_key"], body["status"],
                   tuple(sorted((a["alert_id"], a["status"]) for a in body["alerts"])))
        keys[content].add(d.headers["Idempotency-Key"])
    firing = {a["alert_id"] for a in outcome.alerts if a["status"] == "FIRING"}
    assert firing - notified == set(), f"never notified: {sorted(firing - notified)}"
    assert {c: k for c, k in keys.items() if len(k) > 1} == {}, "a repeat with another Idempotency-Key"
    # 4. nothing stuck: every worker alive, healthy, with nothing queued
    stuck = {n: why for n, h in outcome.health.items() if (why := idle(h))}
    assert stuck == {}, stuck
