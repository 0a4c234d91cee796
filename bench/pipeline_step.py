"""One load step of ``emowatch bench pipeline``: run the planned calls, wait for the pipeline to finish them,
and account for every chunk and alert event (the measurements of ``pipeline.py``'s report)."""
from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter
from typing import Any

from emowatch.bench.gateway import _result, delay_buckets, quantile
from emowatch.bench.pipeline_calls import PlannedCall, plan
from emowatch.bench.pipeline_infer import _bucket_quantile, _metrics
from emowatch.bench.pipeline_observe import Resources, TopicWatch, ms, step_latencies
from emowatch.bench.stats import percentile

CLIENT_PROCESSES = 2
SCORE_DRAIN_S = 20.0  # after the last call ended: chunks not scored by then are lost
TARGET_CHUNK_P99_S = 1.0


def run_clients(url: str, calls: list[PlannedCall], wall0: float, deadline_s: float, tick) -> dict[str, Any]:
    """The planned calls through the gateway at ``url`` from :data:`CLIENT_PROCESSES` processes; ``tick()``
    runs about every second meanwhile (samples, checks). The client processes' records, merged."""
    from emowatch.bench.pipeline_clients import client_process

    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=client_process, args=(url.replace("http://", "ws://"), calls[p::CLIENT_PROCESSES],
                                                      wall0, results), daemon=True)
             for p in range(CLIENT_PROCESSES)]
    for proc in procs:
        proc.start()
    merged: dict[str, Any] = {"calls": {}, "lags": [], "failed": 0, "errors": [], "cpu_s": 0.0}
    deadline = time.monotonic() + deadline_s
    for _ in procs:
        while True:
            tick()
            try:
                r = _result(results, procs, min(deadline, time.monotonic() + 1.0))
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        merged["calls"].update(r["calls"])
        merged["lags"] += r["lags"]
        merged["errors"] += r["errors"]
        merged["failed"] += r["failed"]
        merged["cpu_s"] += r["cpu_s"]
    for proc in procs:
        proc.join(30)
    return merged


def wait_until(pred, timeout_s: float, tick) -> bool:
    """Poll ``pred`` (with ``tick()``) until it holds or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while not pred():
        tick()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)  # polling interval of a deadline loop
    return True


def run_step(ctx, tag: str, calls: int, seconds: int, *, seed: int = 0) -> dict[str, Any]:
    """``ctx``: the running bench (``pipeline.Bench``: stack, urls, watch, receiver, resources, lag waits)."""
    planned = plan(calls, seconds, tag, ctx.catalog, seed)
    watch: TopicWatch = ctx.watch
    res: Resources = ctx.resources
    wall0 = time.time() + 3.0 + calls / 100  # the client processes are up and connected before the first frame
    stages0 = _stage_metrics(ctx)
    res.start()
    t0 = time.monotonic()
    last_sample = [0.0]

    def tick() -> None:
        if time.monotonic() - last_sample[0] >= 1.0:
            last_sample[0] = time.monotonic()
            res.sample()
            ctx.stack.check_workers()
            watch.check()

    got = run_clients(ctx.gateway_url, planned, wall0, seconds + 180 + calls, tick)
    clients_wall = time.monotonic() - t0
    by_call = got["calls"]
    acked = {(c, role, seq) for c, r in by_call.items() for role, seq in r["acked"]}
    # chunk records the clients completed; the gateway acknowledges each (and, when a call's `end` came after its
    # last frame's grace, one more: a 20 ms end-of-call marker, scored like any chunk)
    sent = {(p.call_id, role, seq) for p in planned for seq in by_call.get(p.call_id, {}).get("sent", {})
            for role in p.roles}
    expected = sum(p.seconds * len(p.roles) for p in planned)
    wait_until(lambda: acked <= watch.scores.keys(), SCORE_DRAIN_S, tick)
    scored = acked & watch.scores.keys()
    lost = len(sent - acked) + len(acked - scored) + (expected - len(sent))  # never acknowledged, never scored
    ctx.wait_alerts_done(tick)
    prefix = tag + "-"
    mine = {k: v for k, v in list(watch.alerts.items()) if v[1]["call_id"].startswith(prefix)}
    ids = {aid for aid, _ in mine}
    wait_until(lambda: not _undelivered(mine, _first(ctx.receiver.events, ids)), 10.0, tick)
    arrivals = _first(ctx.receiver.events, ids)
    counts = Counter((aid, st) for aid, st, _t in list(ctx.receiver.events) if aid in ids)
    lost_alerts = _undelivered(mine, arrivals)
    firing_as_resolved = sum(1 for aid, st in mine if st == "FIRING" and (aid, st) not in arrivals
                             and (aid, "RESOLVED") in arrivals)
    resources, machine = res.result(), res.machine()
    stages = _stage_delays(stages0, _stage_metrics(ctx))
    resources["clients"] = {"cpu_cores": round(got["cpu_s"] / max(1e-9, clients_wall), 3), "rss_mb": None}
    # the kernel's part (loopback TCP, scheduling) and anything else: what the processes' own CPU leaves out
    machine["unattributed_cores"] = round(machine["busy_cores"] - sum(r["cpu_cores"] for r in resources.values()), 3)
    lat = step_latencies(by_call, watch, arrivals, prefix)
    lags = got["lags"]
    step = {
        "calls": calls, "seconds": seconds, "planned_calls": len(planned),
        "stereo_calls": sum(p.stereo for p in planned),
        "escalating_calls": sum(p.sample in ctx.escalating for p in planned),
        "chunks_expected": expected, "chunks_sent": len(sent), "chunks_acked": len(acked),
        "end_markers": len(acked - sent), "chunks_scored": len(scored), "chunks_lost": lost,
        "failed_calls": got["failed"], "errors": got["errors"][:3],
        "p50_chunk_to_score_ms": ms(percentile(lat["chunk_to_score"], 0.5)),
        "p99_chunk_to_score_ms": ms(percentile(lat["chunk_to_score"], 0.99)),
        "max_chunk_to_score_ms": ms(max(lat["chunk_to_score"], default=None)),
        "alert_events_on_topic": len(mine), "firing_alerts": lat["firing_alerts"],
        "firing_by_rule": dict(Counter(rec["rule_id"] for (_a, st), (_t, rec) in mine.items() if st == "FIRING")),
        "alert_events_at_receiver": len(arrivals), "alert_events_lost": len(lost_alerts),
        "firing_notified_only_as_resolved": firing_as_resolved,
        "alert_events_repeated": sum(n - 1 for n in counts.values() if n > 1),
        "p50_alert_to_topic_ms": ms(percentile(lat["alert_to_topic"], 0.5)),
        "p99_alert_to_topic_ms": ms(percentile(lat["alert_to_topic"], 0.99)),
        "p50_alert_to_webhook_ms": ms(percentile(lat["alert_to_webhook"], 0.5)),
        "p99_alert_to_webhook_ms": ms(percentile(lat["alert_to_webhook"], 0.99)),
        "max_alert_to_webhook_ms": ms(max(lat["alert_to_webhook"], default=None)),
        "frames_on_pace": round(sum(1 for x in lags if x <= 0.1) / len(lags), 4) if lags else None,
        "max_frame_lag_ms": ms(max(lags, default=None)),
        **stages, "resources": resources, "machine_cpu": machine, "rows": None, "duplicate_rows": None,
    }
    step["sustained_live"] = bool(
        step["chunks_lost"] == 0 and not got["failed"] and step["p99_chunk_to_score_ms"] is not None
        and step["p99_chunk_to_score_ms"] <= TARGET_CHUNK_P99_S * 1000 and step["alert_events_lost"] == 0)
    step["sustained"] = step["sustained_live"]  # and, once the sink's rows are counted, rows == chunks
    return step


def _first(events: list[tuple[str, str, float]], ids: set[str]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for aid, status, t in list(events):
        if aid in ids:
            out.setdefault((aid, status), t)
    return out


def _undelivered(on_topic, arrivals: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
    """Alert events on the topic the receiver never got. A FIRING the notifier only listed as RESOLVED (the
    episode ended before its group's notification) was delivered: it is counted apart, not lost."""
    return [(aid, st) for aid, st in on_topic
            if (aid, st) not in arrivals and not (st == "FIRING" and (aid, "RESOLVED") in arrivals)]


def _stage_metrics(ctx) -> dict[str, Any] | None:
    """The gateway's publish-delay histogram and the agent's metrics (``pipeline_infer``), read now; None while
    a worker's web server is not up yet (the warm-up call)."""
    import urllib.request

    try:
        gw = ctx.stack.workers["gateway"].http_port
        page = urllib.request.urlopen(f"http://127.0.0.1:{gw}/metrics", timeout=10).read().decode()
        return {"gateway": delay_buckets(page), "infer": _metrics(ctx.stack.workers["infer"].http_port)}
    except OSError:
        return None


def _stage_delays(m0: dict[str, Any] | None, m1: dict[str, Any] | None) -> dict[str, Any]:
    """Where a chunk's time went, from the workers' own histograms between two readings: the gateway's p99
    publish delay (bytes completing a chunk -> broker ack, interpolated in its bucket) and the agent's p99
    (input timestamp -> score produced, the bucket's upper bound) and mean batch."""
    if m0 is None or m1 is None:
        return {"gateway_p99_publish_delay_ms": None, "agent_p99_le_ms": None, "agent_mean_batch": None}
    gw = quantile(m0["gateway"], m1["gateway"], 0.99)
    a0, a1 = m0["infer"], m1["infer"]
    batches = a1["emowatch_infer_batch_size_count"] - a0["emowatch_infer_batch_size_count"]
    return {"gateway_p99_publish_delay_ms": None if gw["p"] is None else round(gw["p"] * 1000, 1),
            # None past the histogram's last finite bound (JSON has no infinity)
            "agent_p99_le_ms": None if (q := _bucket_quantile(a0, a1, 0.99)) is None or q == float("inf") else q * 1000,
            "agent_mean_batch": round((a1["emowatch_infer_batch_size_sum"] - a0["emowatch_infer_batch_size_sum"])
                                      / batches, 1) if batches else None}
