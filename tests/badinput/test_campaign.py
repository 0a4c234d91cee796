"""Bad-input campaign (issue #17): malformed messages interleaved with valid traffic on the real local stack.

The agent, the catch-all rules worker, the ClickHouse sink (embedded chDB) and the notifier (a local signed
webhook receiver) run as child processes on the session broker. The bundled sample calls go through once
clean (call ids ``clean-*``), then again (``noisy-*``, the same audio and times) with the malformed messages
of :mod:`badinput.generate` produced in between, by a plain confluent-kafka producer, on the audio, scores,
rules, silences and acks topics. Then:

* no worker died or stalled: each one's ``/health`` answers, every consumer group's lag drains to 0;
* every malformed message is on the DLQ once per service that reads its topic, with a reason and its
  original bytes; those accepted by design are counted apart and their effect checked (scored, or none);
* the noisy run's scores, alerts and notifications equal the clean run's (call ids aside).

Size: ``size(1500, 10000)`` messages (``make test`` / ``make test-full``). With
``TEST_BADINPUT_JSON=path`` the counts are written there as JSON (docs/bench/badinput.json).
"""
from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from badinput.generate import Bad, campaign, readable_audio
from confluent_kafka import Producer
from conftest import FULL, size

from emowatch.streams.kafka.audio_publisher import CallSpec, call_records
from emowatch.streams.kafka.clients import group_name, serde_for, topics_for
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo import load_calls, wait_for_lag_zero
from emowatch.streams.local.demo_webhook import DemoWebhook
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.resources import default_rules_file, demo_model_dir, notify_demo_config
from emowatch.topics.registry import PRODUCER_PARTITIONER, Topics

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500 if FULL else 600)]
TIMEOUT = 600 if FULL else 300
N_BAD = size(1500, 10_000)
DLQ_WAIT_S = 60
SEED = 17
START_MS = 1_767_225_600_000
CONSUMERS = {"audio": ("emowatch-infer",), "scores": ("emowatch-sink", "rules"), "rules": ("rules",),
             "silences": ("emowatch-notify",), "acks": ("emowatch-notify",)}


def expected_services(b: Bad) -> tuple[str, ...]:
    """The services that must dead-letter ``b`` (each once); ``dlq_or_scored``: the agent, if it does not score it."""
    return {"dlq": CONSUMERS[b.topic], "dlq_by_sink": ("emowatch-sink",)}.get(b.expect, ())


@dataclass
class Run:
    topics: Topics
    bad: list[Bad]
    dead: list[dict]
    scores: list[dict]
    alerts: list[dict]
    deliveries: list[dict]
    health: dict[str, int]
    rule_versions: tuple[str, str]
    wall_s: float


def _calls(tag: str) -> list[CallSpec]:
    return [CallSpec(call_id=f"{tag}-{c.call_id}", path=c.path, business_line=c.business_line, role=c.role,
                     attributes=c.attributes) for c in load_calls()]


def _status(port: int, path: str = "/health") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, {}


class Client:
    """The campaign's producer: confluent-kafka directly, murmur2 like every emowatch producer."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap, "partitioner": PRODUCER_PARTITIONER,
                                  "linger.ms": 5, "message.max.bytes": 2_000_000})
        self.failures: list[str] = []

    def send(self, topic: str, key: bytes | None, value: bytes | None, into: Bad | None = None) -> None:
        def delivered(err, msg) -> None:
            if err is not None:
                self.failures.append(str(err))
            elif into is not None:
                into.partition, into.offset = msg.partition(), msg.offset()

        while True:
            try:
                self.producer.produce(topic, key=key, value=value, on_delivery=delivered)
                return
            except BufferError:
                self.producer.poll(0.1)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0 and not self.failures, self.failures[:5]


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    data = tmp_path_factory.mktemp("badinput")
    prefix = f"bi{uuid.uuid4().hex[:8]}."
    deliveries: list[dict] = []
    lock = threading.Lock()

    def delivered(body: dict, signed: bool) -> None:
        with lock:
            deliveries.append(dict(body, signed=signed))

    hook = DemoWebhook(delivered).start()
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=prefix).start()
    try:
        kafka = stack.kafka_settings()
        t = topics_for(kafka)
        secret = data / "notify-secrets.yaml"
        secret.write_text(f"demo_hmac: {hook.secret}\n")
        secret.chmod(0o600)
        stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(demo_model_dir()),
                                                    "EMOWATCH_INFER__MAX_CHUNK_S": "2",
                                                    # odd calls that never end: their context holds go after 1 s
                                                    "EMOWATCH_INFER__CONTEXT_HOLD_S": "1"})
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())])
        stack.start_worker("sink", ["sink"])
        stack.start_worker("notify", ["notify", "--config", str(notify_demo_config())],
                           env={"EMOWATCH_NOTIFY__SECRETS_FILE": str(secret), "NOTIFY_DEMO_PORT": str(hook.port)})
        stack.wait_healthy("notify", TIMEOUT, ready=lambda h: h.get("assigned_partitions", 0) > 0)
        stack.wait_healthy("rules", TIMEOUT, ready=lambda h: h.get("rules_ready"))
        version_before = _status(stack.workers["rules"].http_port)[1]["rule_version"]
        groups = {"infer": ([t.audio], group_name(kafka, "emowatch-infer")),
                  "rules": ([t.scores], f"{prefix}emowatch-rules-all"),
                  "sink": ([t.scores, t.alerts], group_name(kafka, "emowatch-sink")),
                  "notify": ([t.alerts], group_name(kafka, "emowatch-notify"))}

        def drained() -> None:
            for topics, group in groups.values():
                wait_for_lag_zero(stack, group, topics, TIMEOUT)

        client = Client(stack.bootstrap)
        serde = serde_for(kafka, "AudioChunk")  # the valid traffic, as the product's publishers write it
        tail = TopicTail(kafka, {t.scores: "FrameScores", t.alerts: "Alert", t.dlq: "DeadLetter"})
        got: dict[str, list] = {t.scores: [], t.alerts: [], t.dlq: []}

        def phase(tag: str, bad: list[Bad]) -> None:
            recs = [r for c in _calls(tag) for r in call_records(c, start_time_ms=START_MS)]
            step = max(1, len(bad) // max(1, len(recs)))
            it = iter(bad)
            for r in recs:  # valid chunks with a slice of the malformed messages after each
                client.send(t.audio, r["call_id"].encode(), serde.encode(r, topic=t.audio))
                for b in [next(it, None) for _ in range(step)]:
                    if b is not None:
                        client.send(t.name(b.topic), b.key, b.value, into=b)
            for b in it:
                client.send(t.name(b.topic), b.key, b.value, into=b)
            client.flush()
            tail.collect(lambda o: sum(1 for s in o[t.scores] if s and s["call_id"].startswith(tag)) >= len(recs),
                         TIMEOUT, check=stack.check_workers, on_record=lambda topic, rec: got[topic].append(rec))
            drained()
            tail.catch_up(got, TIMEOUT)

        phase("clean", [])
        valid_keys = [c.call_id.encode() for c in _calls("noisy")]
        bad = campaign(N_BAD, SEED, valid_keys)
        started = time.monotonic()
        phase("noisy", bad)
        drained()
        # the inputs of consumer groups are dead-lettered before their offsets are committed; the rules and
        # control topics (read without a group) may still be on their way: wait for the count due, or a deadline
        # (the tests below then name what is missing)
        expected_dead = sum(len(expected_services(b)) for b in bad)
        with contextlib.suppress(TimeoutError):
            tail.collect(lambda o: len([d for d in got[t.dlq] if d]) >= expected_dead, DLQ_WAIT_S,
                         check=stack.check_workers, on_record=lambda topic, rec: got[topic].append(rec))
        tail.catch_up(got, TIMEOUT)
        wall = time.monotonic() - started
        tail.close()
        health = {name: _status(w.http_port)[0] for name, w in stack.workers.items()}
        version_after = _status(stack.workers["rules"].http_port)[1]["rule_version"]
        stack.check_workers()
    finally:
        stack.stop()
        hook.stop()
    return Run(t, bad, [d for d in got[t.dlq] if d], [s for s in got[t.scores] if s], [a for a in got[t.alerts] if a],
               deliveries, health, (version_before, version_after), wall)


# --- outcome of each malformed message -------------------------------------------------------------------------

def _service(name: str) -> str:
    return "rules" if name.endswith("emowatch-rules-all") else name


def outcomes(run: Run) -> list[tuple[Bad, str, list[dict]]]:
    """``(message, outcome, its dead letters)``; outcome ``dlq``, ``scored`` or ``none``."""
    dead: dict[tuple, list[dict]] = {}
    for d in run.dead:
        dead.setdefault((d["source_topic"], d["source_partition"], d["source_offset"]), []).append(d)
    scored = {(s["call_id"], s["role"], s["seq"]) for s in run.scores}
    out = []
    for b in run.bad:
        ds = dead.get((run.topics.name(b.topic), b.partition, b.offset), [])
        if ds:
            out.append((b, "dlq", ds))
            continue
        rec = readable_audio(b.value) if b.topic == "audio" else None
        hit = rec is not None and (rec["call_id"], rec["role"], rec["seq"]) in scored
        out.append((b, "scored" if hit else "none", ds))
    return out


def counts(run: Run) -> dict[str, dict[str, int]]:
    """Per ``topic/category``: generated, on the DLQ, scored (accepted by design), without effect."""
    table: dict[str, Counter] = {}
    for b, outcome, _ds in outcomes(run):
        c = table.setdefault(f"{b.topic}/{b.category}", Counter())
        c["generated"] += 1
        c[{"dlq": "on_dlq", "scored": "accepted_scored", "none": "accepted_no_effect"}[outcome]] += 1
        for d in _ds:
            c["dlq_by_" + _service(d["service"])] += 1
    return {k: dict(v) for k, v in sorted(table.items())}


def test_no_worker_died_or_stalled(run):
    # every consumer group's lag drained to 0 (the fixture waited for it) and every worker answers /health
    assert run.health == {"infer": 200, "rules": 200, "sink": 200, "notify": 200}
    assert run.rule_versions[0] == run.rule_versions[1]  # no forged rule set replaced the loaded one


def test_every_malformed_message_is_dead_lettered_by_each_service_that_reads_it(run):
    wrong = []
    for b, outcome, ds in outcomes(run):
        services = sorted(_service(d["service"]) for d in ds)
        if b.expect == "dlq_or_scored":
            ok = outcome == "scored" if not ds else services == ["emowatch-infer"]
        elif b.expect in ("scored", "no_effect"):
            ok = not ds and outcome == ("scored" if b.expect == "scored" else "none")
        else:
            ok = services == sorted(expected_services(b))
        if not ok:
            wrong.append((b.topic, b.category, b.expect, outcome, services, (b.value or b"")[:40]))
        for d in ds:
            assert d["reason"].strip() and "Traceback" not in d["reason"], (b.category, d["reason"])
            assert d["stage"] in ("DECODE", "EVALUATE", "SINK") and d["error_type"], (b.category, d)
            assert d["key"] == b.key and d["value"] == b.value, (b.topic, b.category)
    assert not wrong, f"{len(wrong)} messages not handled as expected, e.g. {wrong[:5]}"


def test_only_the_malformed_messages_were_dead_lettered(run):
    bad = {(run.topics.name(b.topic), b.partition, b.offset) for b in run.bad}
    others = [d for d in run.dead if (d["source_topic"], d["source_partition"], d["source_offset"]) not in bad]
    assert not others, others[:3]
    assert all(b.partition >= 0 and b.offset >= 0 for b in run.bad)  # every one was acknowledged by the broker


def _same_call(records: list[dict], tag: str, drop: tuple[str, ...]) -> list[tuple]:
    out = []
    for r in records:
        if r["call_id"].startswith(tag + "-"):
            kept = {k: v for k, v in r.items() if k not in drop}
            out.append((r["call_id"].removeprefix(tag + "-"), json.dumps(kept, sort_keys=True, default=_plain)))
    return sorted(out)


def _plain(x):
    return x.tolist() if hasattr(x, "tolist") else str(x)


def test_the_valid_traffic_is_scored_exactly_as_without_the_noise(run):
    clean, noisy = (_same_call(run.scores, tag, ("call_id", "trace_id")) for tag in ("clean", "noisy"))
    assert len(clean) == 50 and noisy == clean


def test_the_valid_traffic_is_alerted_and_notified_exactly_as_without_the_noise(run):
    clean, noisy = (_same_call(run.alerts, tag, ("call_id", "alert_id", "trace_id")) for tag in ("clean", "noisy"))
    assert clean and noisy == clean
    # how FIRING and RESOLVED are grouped into notifications depends on timing (group_interval): compare the
    # alerts notified and the status each one was last notified with
    sent: dict[str, dict[tuple, str]] = {"clean": {}, "noisy": {}}
    for body in run.deliveries:
        for a in body.get("alerts", []):
            tag = str(a.get("call_id", "")).split("-", 1)[0]
            if tag in sent:
                sent[tag][(a["call_id"].removeprefix(tag + "-"), a.get("rule_id"), a.get("started_ms"))] = a["status"]
    assert sent["clean"] and sent["noisy"] == sent["clean"], run.deliveries[:2]
    assert all(body["signed"] for body in run.deliveries)


def test_report(run):
    report = {"messages": len(run.bad), "seed": SEED, "wall_s": round(run.wall_s, 1),
              "dead_letters": len(run.dead), "categories": counts(run), "health": run.health}
    print(json.dumps(report, indent=1))
    path = os.environ.get("TEST_BADINPUT_JSON")
    if path:
        Path(path).write_text(json.dumps(report, indent=1) + "\n")
