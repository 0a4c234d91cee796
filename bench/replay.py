"""``emowatch bench replay``: score messages per second through a replay, a 10-value sweep, and the live worker.

One run, one local broker: the rules bench's synthetic calls (``bench/rules.py``: ``workload``, the 10-rule
set ``RULES_10``) are written to the scores topic once; then, in each round,

1. a **replay** from Kafka (``streams/kafka/replay_source.py`` + ``streams/replay``: group-less batch
   consumer, compiled Avro reader, the pure ``step`` with throw-away states; nothing stored);
2. a **10-value sweep** of ``angry-sustained.above`` over the same topic (one pass, shared lane);
3. the **live rules worker** (``emowatch worker rules``, Faust, table + changelog) over the same messages,
   started and measured by ``bench/rules.py`` (its ``/metrics`` counter between 10 % and 90 %).

A replay's rate is taken the same way (its progress counter between 10 % and 90 % of the messages);
``seconds`` is its whole wall time (opening the topic, offsets, the pass). ``replay_over_live`` =
replay rate / live worker rate; ``sweep_time_over_replay`` = sweep seconds / replay seconds. The full run
also times a sweep of a rule that is an inhibition source (one state per value: the slow path).
"""
from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from emowatch.bench.machine import machine_info
from emowatch.bench.rules import RULES_10, SIZES, rules_worker_rate, workload
from emowatch.rules.loader import parse_ruleset
from emowatch.streams.replay.params import Scope, Window
from emowatch.streams.replay.runner import ReplayRequest, run_replay
from emowatch.streams.replay.sweep import parse_sweep

SWEEP = "angry-sustained.above=0.5:0.95:0.05"
SWEEP_SEPARATE = "angry-critical.above=0.8:0.98:0.02"   # an inhibition source: one lane per value
TARGETS = {"replay_over_live_min": 5.0, "sweep_time_over_replay_max": 2.0}


def timed_replay(kafka: Any, topic: str, sweep: str | None = None) -> dict[str, Any]:
    """One replay (or sweep) of the whole topic from Kafka; rates and what it found."""
    from emowatch.streams.kafka.replay_source import KafkaWindowReader

    rs = parse_ruleset(RULES_10, "bench10.yaml")
    request = ReplayRequest(rs, "bench10.yaml", Window(0), Scope("*"), "kafka", scores_topic=topic,
                            sweep=parse_sweep(sweep) if sweep else None)
    samples: list[tuple[float, int]] = []
    t0, c0 = time.perf_counter(), time.process_time()
    reader = KafkaWindowReader(kafka, topic, "FrameScores", from_ms=0)
    opened = time.perf_counter()
    out = run_replay(request, (r for batch in reader.batches() for r in batch), progress_every=250,
                     progress=lambda n, _calls: samples.append((time.perf_counter(), n)))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = out.totals.offered
    lo = next(s for s in samples if s[1] >= 0.1 * n)
    hi = next(s for s in samples if s[1] >= 0.9 * n)
    res: dict[str, Any] = {
        "msgs_per_s": round((hi[1] - lo[1]) / max(hi[0] - lo[0], 1e-9)), "msgs_per_s_total": round(n / seconds),
        "msgs_per_cpu_s": round(n / cpu), "seconds": round(seconds, 3), "open_seconds": round(opened - t0, 3),
        "messages": n, "offsets_fallback": reader.fallback, "load_avg_1m": round(os.getloadavg()[0], 2)}
    if out.sweep is not None:
        res["mode"] = out.sweep["mode"]
        res["alerts_per_value"] = {v["label"]: v["alerts"] for v in out.sweep["values"]}
    else:
        res["alerts"], res["events"] = out.alerts, len(out.events)
    return res


def _round(stack: Any, kafka: Any, topic: str, rules_file: Path, n: int, r: int, quick: bool) -> dict[str, Any]:
    replay = timed_replay(kafka, topic)
    sweep = timed_replay(kafka, topic, SWEEP)
    out = {"replay": replay, "sweep": sweep, "live_worker": rules_worker_rate(stack, rules_file, n, r)}
    if not quick:
        out["sweep_separate"] = timed_replay(kafka, topic, SWEEP_SEPARATE)
    out["replay_over_live"] = round(replay["msgs_per_s"] / out["live_worker"]["msgs_per_s"], 2)
    out["replay_over_live_total"] = round(replay["msgs_per_s_total"] / out["live_worker"]["msgs_per_s"], 2)
    out["sweep_time_over_replay"] = round(sweep["seconds"] / replay["seconds"], 2)
    return out


def run(quick: bool = True, rounds: int | None = None) -> dict[str, Any]:
    """Run on a fresh local broker; the round with the median ``replay_over_live`` is reported."""
    from emowatch.streams.kafka.clients import topics_for
    from emowatch.streams.kafka.scores_publisher import publish_scores
    from emowatch.streams.local.stack import LOW_LATENCY_FETCH_WAIT_MS, LocalStack

    size = SIZES[quick]
    rounds = rounds or (1 if quick else 3)
    messages = workload(size["calls"], size["seconds"])
    n = len(messages)
    runs = []
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-replay-") as tmp:
        data = Path(tmp)
        rules_file = data / "bench10.yaml"
        rules_file.write_text(RULES_10)
        stack = LocalStack(fetch_wait_max_ms=LOW_LATENCY_FETCH_WAIT_MS, data_dir=data, topic_prefix="bench.").start()
        try:
            kafka = stack.kafka_settings()
            topic = topics_for(kafka).scores
            publish_scores(kafka, messages, timeout_s=120)
            runs = [_round(stack, kafka, topic, rules_file, n, r, quick) for r in range(rounds)]
        finally:
            stack.stop()
    best = sorted(runs, key=lambda x: x["replay_over_live"])[(len(runs) - 1) // 2]
    ratio, sweep_ratio = best["replay_over_live"], best["sweep_time_over_replay"]
    return {
        "benchmark": "replay", "quick": quick,
        "machine": machine_info(("confluent-kafka", "fastavro", "faust-streaming", "aiokafka")),
        "workload": {"messages": n, "calls": size["calls"], "seconds_per_call": size["seconds"],
                     "frames_per_message": 50, "rules": 10, "partitions": 4, "rounds": rounds,
                     "sweep": SWEEP, "sweep_values": 10},
        "replay_over_live": ratio, "sweep_time_over_replay": sweep_ratio,
        "replay_over_live_total": best["replay_over_live_total"],
        "replay": best["replay"], "sweep": best["sweep"], "live_worker": best["live_worker"],
        "sweep_separate": best.get("sweep_separate"),
        "targets": {**TARGETS, "met": ratio >= TARGETS["replay_over_live_min"]
                    and sweep_ratio <= TARGETS["sweep_time_over_replay_max"]},
        "ratio_range": [min(r["replay_over_live"] for r in runs), max(r["replay_over_live"] for r in runs)],
        "sweep_ratio_median": statistics.median(r["sweep_time_over_replay"] for r in runs),
        "runs": runs,
    }


def main(quick: bool, json_path: Path | None) -> None:
    """Run, print a summary, write JSON if asked."""
    res = run(quick=quick)
    w, rp, sw, lw = res["workload"], res["replay"], res["sweep"], res["live_worker"]
    print(f"workload: {w['messages']} score messages ({w['calls']} calls x {w['seconds_per_call']} s, 50 frames), "
          f"10 rules, 4 partitions; median of {w['rounds']} round(s)")
    print(f"{'':44}{'msgs/s':>9}{'msgs/CPU-s':>12}{'seconds':>9}")
    print(f"{'live rules worker (Faust, table, changelog)':44}{lw['msgs_per_s']:>9}{lw['msgs_per_cpu_s'] or 0:>12}")
    print(f"{'replay from Kafka (10 rules)':44}{rp['msgs_per_s']:>9}{rp['msgs_per_cpu_s']:>12}{rp['seconds']:>9}")
    print(f"{'10-value sweep from Kafka (' + sw['mode'] + ')':44}{sw['msgs_per_s']:>9}{sw['msgs_per_cpu_s']:>12}"
          f"{sw['seconds']:>9}")
    if res["sweep_separate"]:
        ss = res["sweep_separate"]
        print(f"{'10-value sweep, inhibition source (' + ss['mode'] + ')':44}{ss['msgs_per_s']:>9}"
              f"{ss['msgs_per_cpu_s']:>12}{ss['seconds']:>9}")
    print(f"replay / live: {res['replay_over_live']}x (whole replay incl. opening: {res['replay_over_live_total']}x); "
          f"sweep time / replay time: {res['sweep_time_over_replay']}x; offsets fallback: {rp['offsets_fallback']}")
    met = "met" if res["targets"]["met"] else "NOT met"
    print(f"targets (replay >= 5x live, 10-value sweep <= 2x a replay): {met}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(res, indent=2))
