"""`emowatch bench gateway`: how many live calls one gateway process takes in real time.

The gateway runs as a worker process (``emowatch worker gateway``) on a fresh local broker
(``LocalStack``); the calls are WebSocket clients in separate processes (``bench/gateway_clients.py``),
each sending real-time-paced 100 ms PCM frames (16 kHz mono s16le, 1 s chunks). The number of calls is
ramped; a step **holds** when

* the gateway's chunk publish delay (receipt of the bytes completing a chunk -> broker ack, its histogram
  ``emowatch_gateway_publish_delay_seconds``, read before and after the step) has p99 <= 100 ms, and
* nothing falls behind real time: every chunk of every call is acknowledged, the clients kept their pace
  (99% of frames sent within 100 ms of their due time) and the end-to-end ack p99 (client: send of the
  completing frame -> the gateway's ``published`` message) is under 1 s.

``sustained_calls`` is the largest step that held (the ramp stops at the first that does not);
``p99_publish_delay_ms`` is the gateway-side p99 at that step (linear inside its histogram bucket;
``within_100ms`` is the exact fraction at the 100 ms bucket bound). Results are reported, never asserted.
"""
from __future__ import annotations

import json
import math
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

from emowatch.bench.machine import machine_info, process_cpu_seconds
from emowatch.bench.stats import percentile

SIZES = {True: {"steps": [25, 50, 100, 200], "seconds": 6}, False: {"steps": [50, 100, 200, 300, 400, 600, 800, 1000],
                                                                   "seconds": 20}}
HISTOGRAM = "emowatch_gateway_publish_delay_seconds"
BROKER_HISTOGRAM = "emowatch_gateway_broker_ack_seconds"  # the broker's share: producer hand-off -> ack
TARGET_S = 0.1


def delay_buckets(metrics_text: str, name: str = HISTOGRAM) -> list[tuple[float, float]]:
    """Cumulative ``(upper bound s, count)`` of a histogram (default: the publish delay) in a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        if family.name == name:
            return sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
    return []


def quantile(before: list[tuple[float, float]], after: list[tuple[float, float]], q: float) -> dict[str, Any]:
    """The ``q`` quantile (s) of the observations made between two histogram readings, interpolated inside
    its bucket, with the count and the exact fraction within :data:`TARGET_S`."""
    b = dict(before)
    diff = [(le, c - b.get(le, 0.0)) for le, c in after]
    total = diff[-1][1] if diff else 0.0
    within = next((c for le, c in diff if abs(le - TARGET_S) < 1e-9), 0.0)
    if total <= 0:
        return {"count": 0, "p": None, "within_100ms": None}
    rank, low, prev = q * total, 0.0, 0.0
    for le, c in diff:
        if c >= rank:
            if math.isinf(le):
                return {"count": int(total), "p": low, "within_100ms": within / total}
            frac = (rank - prev) / (c - prev) if c > prev else 1.0
            return {"count": int(total), "p": low + (le - low) * frac, "within_100ms": within / total}
        low, prev = le, c
    return {"count": int(total), "p": low, "within_100ms": within / total}




def run_step(url: str, calls: int, seconds: int, *, processes: int = 2, tag: str = "") -> dict[str, Any]:
    """``calls`` live calls for ``seconds`` through the gateway at ``url``; the step's measurements."""
    import httpx

    from emowatch.bench.gateway_clients import FRAME_S, client_process

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    ids = [f"bench{tag}-{calls}-{i:05d}" for i in range(calls)]
    stagger = [FRAME_S * i / calls for i in range(calls)]
    start_at = time.time() + 3.0 + calls / 100  # every client connected before the first frame
    page = httpx.get(f"{url}/metrics").text
    before, broker_before = delay_buckets(page), delay_buckets(page, BROKER_HISTOGRAM)
    procs = []
    for p in range(processes):
        args = (url.replace("http://", "ws://"), ids[p::processes], start_at, seconds, stagger[p::processes], results)
        procs.append(ctx.Process(target=client_process, args=args, daemon=True))
    for proc in procs:
        proc.start()
    merged: dict[str, Any] = {"latencies": [], "expected": 0, "acked": 0, "published": 0, "lags": [], "failed": 0,
                              "errors": [], "cpu_s": 0.0}
    t0 = time.monotonic()
    deadline = time.monotonic() + seconds + 120 + calls / 10
    for _ in procs:
        r = _result(results, procs, deadline)
        for k in ("latencies", "lags", "errors"):
            merged[k] += r[k]
        for k in ("expected", "acked", "published", "failed", "cpu_s"):
            merged[k] += r[k]
    for proc in procs:
        proc.join(30)
    page = httpx.get(f"{url}/metrics").text
    gw = quantile(before, delay_buckets(page), 0.99)
    broker = quantile(broker_before, delay_buckets(page, BROKER_HISTOGRAM), 0.99)
    lags = merged["lags"]
    on_pace = sum(1 for lag in lags if lag <= TARGET_S) / len(lags) if lags else 0.0
    e2e99 = percentile(merged["latencies"], 0.99)
    all_acked = merged["acked"] == merged["expected"] == calls * seconds and not merged["failed"]
    held = bool(all_acked and gw["p"] is not None and gw["within_100ms"] >= 0.99 and on_pace >= 0.99
                and e2e99 is not None and e2e99 < 1.0)
    return {
        "calls": calls, "seconds": seconds, "chunks_expected": calls * seconds, "chunks_acked": merged["acked"],
        "failed_calls": merged["failed"], "errors": merged["errors"][:3],
        "gateway_p99_publish_delay_ms": None if gw["p"] is None else round(gw["p"] * 1000, 1),
        "gateway_within_100ms": None if gw["within_100ms"] is None else round(gw["within_100ms"], 4),
        "gateway_observations": gw["count"], "published_messages": merged["published"],
        "broker_ack_p99_ms": None if broker["p"] is None else round(broker["p"] * 1000, 1),
        "e2e_ack_p50_ms": None if not merged["latencies"] else round(percentile(merged["latencies"], 0.5) * 1000, 1),
        "e2e_ack_p99_ms": None if e2e99 is None else round(e2e99 * 1000, 1),
        "frames_on_pace": round(on_pace, 4), "max_send_lag_ms": round(max(lags, default=0.0) * 1000, 1),
        "clients_cpu_share": round(merged["cpu_s"] / max(1e-9, time.monotonic() - t0), 3),
        "held": held,
    }


def _result(results, procs: list, deadline: float) -> dict[str, Any]:
    """The next client process's measurements; fails at once when a client process died without any."""
    import queue

    while True:
        try:
            return results.get(timeout=1.0)
        except queue.Empty:
            if all(p.exitcode is not None for p in procs) and results.empty():
                raise RuntimeError(f"a client process ended without results (exit codes "
                                   f"{[p.exitcode for p in procs]})") from None
            if time.monotonic() > deadline:
                raise TimeoutError("the client processes did not finish in time") from None


def run(quick: bool = True, steps: list[int] | None = None, seconds: int | None = None) -> dict[str, Any]:
    from emowatch.streams.local.stack import LOW_LATENCY_FETCH_WAIT_MS, LocalStack

    size = SIZES[quick]
    steps = steps or size["steps"]
    seconds = seconds or size["seconds"]
    out_steps: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-gateway-") as tmp:
        stack = LocalStack(fetch_wait_max_ms=LOW_LATENCY_FETCH_WAIT_MS, data_dir=Path(tmp),
                           topic_prefix="bench.").start()
        try:
            worker = stack.start_worker("gateway", ["gateway"], env={"EMOWATCH_LOG_LEVEL": "WARNING"})
            url = f"http://127.0.0.1:{worker.http_port}"
            stack.wait_healthy("gateway", 60)
            pids = {"gateway": worker.proc.pid, "broker": stack.broker.pid}
            for calls in steps:
                cpu0, t0 = {k: process_cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
                step = run_step(url, calls, seconds)
                for k, pid in pids.items():  # CPU used over the step, in cores (clients: measured by themselves)
                    step[f"{k}_cpu_share"] = round((process_cpu_seconds(pid) - cpu0[k]) / (time.monotonic() - t0), 3)
                stack.check_workers()
                out_steps.append(step)
                print(f"{calls:5d} calls: gateway p99 {step['gateway_p99_publish_delay_ms']} ms "
                      f"(within 100 ms: {step['gateway_within_100ms']}; "
                      f"broker ack p99 {step['broker_ack_p99_ms']} ms), "
                      f"e2e ack p99 {step['e2e_ack_p99_ms']} ms, "
                      f"acked {step['chunks_acked']}/{step['chunks_expected']}, on pace {step['frames_on_pace']}, "
                      f"CPU gateway/broker/clients {step['gateway_cpu_share']}/{step['broker_cpu_share']}/"
                      f"{step['clients_cpu_share']} -> {'held' if step['held'] else 'NOT held'}",
                      flush=True)
                if not step["held"]:
                    break
        finally:
            stack.stop()
    best = max((s for s in out_steps if s["held"]), key=lambda s: s["calls"], default=None)
    return {
        "benchmark": "gateway", "quick": quick,
        "machine": machine_info(("fastapi", "uvicorn", "websockets", "confluent-kafka", "fastavro")),
        "workload": {"frame_ms": 100, "chunk_ms": 1000, "audio": "16 kHz mono PCM_S16LE", "seconds_per_step": seconds,
                     "steps": steps, "client_processes": 2, "gateway_processes": 1, "partitions": 4,
                     "broker": "local tansu (memory)"},
        "sustained_calls": best["calls"] if best else 0,
        "p99_publish_delay_ms": best["gateway_p99_publish_delay_ms"] if best else None,
        "p99_publish_delay_source": "gateway histogram emowatch_gateway_publish_delay_seconds (receipt of the bytes "
                                    "completing a chunk -> broker ack), interpolated inside its bucket",
        "e2e_ack_p99_ms": best["e2e_ack_p99_ms"] if best else None,
        "e2e_ack_source": "client: send of the frame completing a chunk -> the gateway's `published` message",
        "criteria": {"gateway_p99_publish_delay_ms_max": 100, "frames_on_pace_min": 0.99, "all_chunks_acked": True,
                     "e2e_ack_p99_ms_max": 1000},
        "steps": out_steps,
    }


def main(quick: bool, json_path: Path | None) -> None:
    res = run(quick=quick)
    print(f"sustained live calls: {res['sustained_calls']} (gateway p99 publish delay "
          f"{res['p99_publish_delay_ms']} ms, e2e ack p99 {res['e2e_ack_p99_ms']} ms)")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
