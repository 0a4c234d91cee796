"""`emowatch bench notify`: alerts through the notifier (a worker process) to a local signed webhook receiver.

Two phases on a fresh local broker, each alert its own group (``group_by: [call_id]`` and one call per
alert: ``alert_id`` is not a routing label) and ``group_wait: 0s``:

* **throughput**: N alerts are on the topic before the notifier starts; ``deliveries_per_s`` =
  deliveries / (last delivery - first delivery) at the receiver (sustained, concurrent requests:
  the notifier keeps up to 64 in flight).
* **latency**: alerts produced at 200/s; ``p99_added_latency_ms`` = receiver got it - producer
  handed it to the client (alert produced -> receiver has it).

Targets (reported, never asserted): >= 1,000 deliveries/s, p99 <= 100 ms.
"""
from __future__ import annotations

import json
import tempfile
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from emowatch.bench.machine import machine_info
from emowatch.bench.stats import percentile

SIZES = {True: {"throughput": 2000, "latency_s": 10}, False: {"throughput": 10000, "latency_s": 60}}
RATE = 200


class Receiver:
    """A local webhook receiver (``BackgroundApp``); records (alert_id, arrival time) per request: the first
    arrival of each alert in ``arrivals``, every listed alert as ``(alert_id, status, arrival time)`` in ``events``."""

    def __init__(self) -> None:
        from aiohttp import web

        from emowatch.streams.local.http_thread import BackgroundApp

        self.arrivals: dict[str, float] = {}
        self.requests = 0
        self.events: list[tuple[str, str, float]] = []

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            now = time.time()
            self.requests += 1
            for a in json.loads(body)["alerts"]:
                self.arrivals.setdefault(a["alert_id"], now)
                self.events.append((a["alert_id"], a.get("status", ""), now))
            return web.Response(status=200)

        self._server = BackgroundApp(lambda app: app.router.add_post("/hook", handle), name="bench-receiver",
                                     backlog=1024).start()
        self.port = self._server.port

    def stop(self) -> None:
        self._server.stop()


def webhook_config(data: Path, port: int, *, group_by: str = "[call_id]", group_interval: str = "5m",
                   send_resolved: bool = False, name: str = "bench-notify") -> tuple[Path, Path]:
    """A notifier configuration with one signed webhook receiver on ``port`` (group_wait 0) and its secrets file."""
    cfg = data / f"{name}.yaml"
    resolved = "\n              send_resolved: true" if send_resolved else ""
    cfg.write_text(textwrap.dedent(f"""\
        global:
          webhook_allowed_hosts: [127.0.0.1]
        route:
          receiver: hook
          group_by: {group_by}
          group_wait: 0s
          group_interval: {group_interval}
          repeat_interval: 4h
        receivers:
          - name: hook
            webhook:
              url: http://127.0.0.1:{port}/hook
              hmac_key: {{secret: bench_hmac}}{resolved}
              timeout: 5s
        """))
    secrets = data / f"{name}-secrets.yaml"
    secrets.write_text("bench_hmac: bench-secret\n")
    secrets.chmod(0o600)
    return cfg, secrets


def _alert(call: str) -> dict[str, Any]:
    return {"alert_id": uuid.uuid4().hex, "status": "FIRING", "rule_id": "angry", "rule_version": "v1",
            "rule_set": "bench", "priority": "HIGH", "action": "ALERT", "business_line": "bench", "call_id": call,
            "role": "CUSTOMER", "emotions": ["angry"], "value": 0.9, "threshold": 0.75, "started_ms": 1000,
            "fired_ms": 4000, "event_time": int(time.time() * 1000), "channels": [], "labels": {},
            "replay_id": None, "trace_id": None}


def _wait(pred, timeout: float, stack) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        stack.check_workers()
        if time.monotonic() > deadline:
            raise TimeoutError("the notifier did not deliver everything in time")
        time.sleep(0.05)




def run(quick: bool = True) -> dict[str, Any]:
    from emowatch.streams.kafka.clients import make_producer, serde_for, topics_for
    from emowatch.streams.local.stack import LOW_LATENCY_FETCH_WAIT_MS, LocalStack
    from emowatch.topics.serde import encode_key

    size = SIZES[quick]
    receiver = Receiver()
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-notify-") as tmp:
        data = Path(tmp)
        stack = LocalStack(fetch_wait_max_ms=LOW_LATENCY_FETCH_WAIT_MS, data_dir=data, topic_prefix="bench.").start()
        try:
            kafka = stack.kafka_settings()
            topic = topics_for(kafka).alerts
            serde = serde_for(kafka, "Alert")
            producer = make_producer(kafka, **{"linger.ms": 0})
            cfg, secrets = webhook_config(data, receiver.port)
            n = size["throughput"]
            for i in range(n):
                a = _alert(f"call-{i}")
                producer.produce(topic, key=encode_key(a["call_id"]), value=serde.encode(a, topic=topic))
                if i % 1000 == 0:
                    producer.poll(0)
            producer.flush(60)
            stack.start_worker("notify", ["notify", "--config", str(cfg)],
                               env={"EMOWATCH_NOTIFY__SECRETS_FILE": str(secrets)})
            _wait(lambda: len(receiver.arrivals) >= n, 300, stack)
            times = sorted(receiver.arrivals.values())
            throughput = (n - 1) / max(1e-9, times[-1] - times[0])

            produced: dict[str, float] = {}
            total = RATE * size["latency_s"]
            start = time.time()
            for i in range(total):
                due = start + i / RATE
                while (left := due - time.time()) > 0:
                    producer.poll(min(left, 0.005))
                a = _alert(f"lat-{i}")
                produced[a["alert_id"]] = time.time()
                producer.produce(topic, key=encode_key(a["call_id"]), value=serde.encode(a, topic=topic))
                producer.poll(0)
            producer.flush(60)
            _wait(lambda: all(k in receiver.arrivals for k in produced), 120, stack)
            lat = [(receiver.arrivals[k] - t) * 1000 for k, t in produced.items()]
            stack.stop_worker("notify")
        finally:
            stack.stop()
            receiver.stop()
    p99 = percentile(lat, 0.99)
    return {
        "benchmark": "notify", "quick": quick,
        "machine": machine_info(("confluent-kafka", "aiohttp", "fastavro")),
        "workload": {"throughput_alerts": n, "latency_rate_per_s": RATE, "latency_alerts": total,
                     "group_by": ["call_id"], "one_call_per_alert": True, "group_wait": "0s",
                     "receiver": "webhook (HMAC), local aiohttp",
                     "partitions": 4},
        "deliveries_per_s": round(throughput, 1),
        "p50_added_latency_ms": round(percentile(lat, 0.5), 1), "p99_added_latency_ms": round(p99, 1),
        "max_added_latency_ms": round(max(lat), 1),
        "targets": {"deliveries_per_s_min": 1000, "p99_added_latency_ms_max": 100,
                    "met": throughput >= 1000 and p99 <= 100},
    }


def main(quick: bool, json_path: Path | None) -> None:
    res = run(quick=quick)
    w = res["workload"]
    print("notifier -> local signed webhook, one group per alert, group_wait 0s")
    print(f"throughput: {w['throughput_alerts']} alerts queued: {res['deliveries_per_s']} deliveries/s "
          "(target >= 1000)")
    print(f"latency at {w['latency_rate_per_s']}/s ({w['latency_alerts']} alerts): "
          f"p50 {res['p50_added_latency_ms']} ms, p99 {res['p99_added_latency_ms']} ms (target <= 100), "
          f"max {res['max_added_latency_ms']} ms")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
