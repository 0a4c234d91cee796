"""History sink throughput: score messages per second from the scores topic into ClickHouse (embedded chDB).

One run on a fresh local broker: N FrameScores messages (1 s chunks, 50 frames x 9 logits, call attributes
incl. ``agent_id``) are written to the scores topic first; then

1. **the sink**: the real :class:`emowatch.streams.sink.service.ClickHouseSink`, in this process, with its
   default batching (``batch_rows`` 5,000, ``batch_ms`` 1,000), consumes them: decode, rows, batch cut
   record, insert with its deduplication token, offset commit. ``sink_msgs_per_s`` = N / (time from the
   first message received to the last row written); afterwards ``count()`` of ``scores`` must equal N.
2. **one insert per message**: the first M of the same messages (M smaller), each decoded, turned into its
   row and inserted alone through the sink's writer (its own Native block and deduplication token) into
   another database of the same engine - no Kafka, no cut record, no commit in the loop, so this side is
   favoured. ``sink_batch_over_single`` = the two rates' ratio.

Targets (reported, not asserted): >= 5,000 messages/s (250,000 frames/s) and >= 20x the per-message rate.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from emowatch.bench.machine import machine_info
from emowatch.rules.testing import interleave, random_timeline, synthetic_call

SIZES = {True: {"messages": 20_000, "single": 1_000}, False: {"messages": 100_000, "single": 2_000}}
SECONDS_PER_CALL = 60
TARGETS = {"sink_msgs_per_s_min": 5_000, "sink_frames_per_s_min": 250_000, "sink_batch_over_single_min": 20.0}
TIMEOUT_S = 600.0


def workload(n: int, seed: int = 11) -> list[dict[str, Any]]:
    """``n`` FrameScores of concurrent calls (60 one-second chunks each, every 4th call the agent side),
    interleaved as live traffic, with the attributes a contact centre attaches to a call."""
    rng = np.random.default_rng(seed)
    start = int(time.time() * 1000) - SECONDS_PER_CALL * 1000  # inside the tables' TTL
    calls = []
    for i in range(math.ceil(n / SECONDS_PER_CALL)):
        attributes = {"agent_id": f"agent-{i % 250:04d}", "queue": ("billing", "support", "sales")[i % 3],
                      "site": ("lisbon", "manila", "austin")[i % 3], "customer_tier": ("gold", "std")[i % 2]}
        calls.append(synthetic_call(f"hist-{i:06d}", random_timeline(rng, SECONDS_PER_CALL),
                                    business_line=("retail", "collections")[i % 2],
                                    role="AGENT" if i % 4 == 3 else "CUSTOMER", attributes=attributes,
                                    noise=0.3, seed=i, event_time=start))
    return interleave(calls)[:n]


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _count(client: Any, database: str) -> int:
    return int(client.query(f"SELECT count() FROM {database}.scores").result_rows[0][0])


def sink_rate(kafka: Any, data_dir: Path, n: int, progress: bool = True) -> dict[str, Any]:
    """Run the real sink in this process over the ``n`` messages on the scores topic; its rate."""
    from emowatch.streams.settings import Settings, SinkSettings
    from emowatch.streams.sink.service import ClickHouseSink

    settings = Settings(kafka=kafka, sink=SinkSettings(data_dir=data_dir, group_id="bench-history-sink"))
    svc = ClickHouseSink(settings)
    reg = svc.metrics.registry
    errors: list[BaseException] = []

    def run() -> None:
        try:
            svc.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run, name="bench-sink", daemon=True)
    c0 = time.process_time()
    thread.start()
    t_first = None
    deadline = time.monotonic() + TIMEOUT_S
    last_print = 0.0
    while True:
        now = time.perf_counter()
        received = reg.get_sample_value("emowatch_sink_received_total") or 0
        rows = reg.get_sample_value("emowatch_sink_rows_written_total") or 0
        if t_first is None and received:
            t_first = now
        if rows >= n:
            t_done = now
            break
        if errors or not thread.is_alive():
            raise RuntimeError(f"the sink stopped: {errors}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the sink wrote {rows} of {n} rows in {TIMEOUT_S:g} s")
        if progress and now - last_print > 2:
            _say(progress, f"  sink: {int(received)} received, {int(rows)} rows written")
            last_print = now
        time.sleep(0.005)  # polling interval of a deadline loop
    cpu = time.process_time() - c0
    inserts = reg.get_sample_value("emowatch_sink_insert_seconds_count") or 0
    svc.stop_event.set()
    thread.join(60)
    if errors:
        raise errors[0]
    seconds = t_done - t_first
    return {"msgs_per_s": round(n / seconds), "seconds": round(seconds, 3), "inserts": int(inserts),
            "cpu_seconds": round(cpu, 2), "batch_rows": settings.sink.batch_rows, "batch_ms": settings.sink.batch_ms}


def single_rate(values: list[bytes], data_dir: Path, topic: str) -> dict[str, Any]:
    """Each message decoded, made a row and inserted alone through the sink's writer (its own Native block
    and deduplication token): the per-message rate of the same insert path."""
    from emowatch.streams.sink.batches import Batch
    from emowatch.streams.sink.clickhouse import apply_schema, connect
    from emowatch.streams.sink.rows import SCORES_NATIVE, scores_row
    from emowatch.streams.sink.writer import SinkWriter
    from emowatch.topics.serde import AvroSerde

    serde = AvroSerde("FrameScores", float_arrays="numpy")
    database = "bench_single"
    client = connect(None, data_dir, database)
    try:
        apply_schema(client, database)
        writer = SinkWriter(client, database, "bench-single")
        t0 = time.perf_counter()
        for offset, value in enumerate(values):
            row = scores_row(serde.decode(value, topic=topic, partition=0, offset=offset), 0, offset)
            writer.insert("scores", SCORES_NATIVE, Batch(topic, 0, offset, offset, [row]))
        seconds = time.perf_counter() - t0
        assert _count(client, database) == len(values)
    finally:
        client.close()
    return {"msgs_per_s": round(len(values) / seconds, 1), "seconds": round(seconds, 3), "messages": len(values)}


def measure_sink(quick: bool = False, progress: bool = True) -> dict[str, Any]:
    """The sink's throughput (real ``ClickHouseSink``, embedded ClickHouse) and the one-insert-per-message
    rate over the same messages; see the module docstring."""
    from emowatch.streams.kafka.clients import topics_for
    from emowatch.streams.kafka.scores_publisher import publish_scores
    from emowatch.streams.local.stack import LOW_LATENCY_FETCH_WAIT_MS, LocalStack
    from emowatch.streams.sink.clickhouse import connect
    from emowatch.topics.serde import AvroSerde

    size = SIZES[quick]
    n, m = size["messages"], size["single"]
    _say(progress, f"history sink bench: generating {n} FrameScores messages")
    messages = workload(n)
    serde = AvroSerde("FrameScores")
    with tempfile.TemporaryDirectory(prefix="emowatch-bench-history-") as tmp:
        data = Path(tmp)
        stack = LocalStack(fetch_wait_max_ms=LOW_LATENCY_FETCH_WAIT_MS, data_dir=data, topic_prefix="bench.").start()
        try:
            kafka = stack.kafka_settings()
            topic = topics_for(kafka).scores
            _say(progress, f"producing {n} messages to {topic}")
            publish_scores(kafka, messages, timeout_s=300)
            _say(progress, "running the sink")
            sink = sink_rate(kafka, data, n, progress)
            client = connect(None, data, "emowatch")
            try:
                stored = _count(client, "emowatch")
            finally:
                client.close()
            if stored != n:
                raise RuntimeError(f"the sink stored {stored} rows for {n} messages")
            _say(progress, f"one insert per message: {m} messages")
            single = single_rate([serde.encode(r, topic=topic) for r in messages[:m]], data, topic)
        finally:
            stack.stop()
    frames = int(np.mean([r["n_frames"] for r in messages]))
    ratio = round(sink["msgs_per_s"] / single["msgs_per_s"], 1)
    return {
        "benchmark": "history-sink", "quick": quick,
        "machine": machine_info(("confluent-kafka", "fastavro", "clickhouse-connect", "chdb"),
                                load_avg_1m=round(os.getloadavg()[0], 2)),
        "workload": {"messages": n, "single_messages": m, "frames_per_message": frames, "labels": 9,
                     "seconds_per_call": SECONDS_PER_CALL, "calls": math.ceil(n / SECONDS_PER_CALL),
                     "partitions": 4, "engine": "embedded chDB", "batch_rows": sink["batch_rows"],
                     "batch_ms": sink["batch_ms"]},
        "sink_msgs_per_s": sink["msgs_per_s"], "sink_frames_per_s": sink["msgs_per_s"] * frames,
        "sink_single_msgs_per_s": single["msgs_per_s"], "sink_batch_over_single": ratio,
        "sink": sink, "single": single, "rows_stored": stored,
        "targets": {**TARGETS, "met": sink["msgs_per_s"] >= TARGETS["sink_msgs_per_s_min"]
                    and sink["msgs_per_s"] * frames >= TARGETS["sink_frames_per_s_min"]
                    and ratio >= TARGETS["sink_batch_over_single_min"]},
    }


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    result = measure_sink(quick=quick)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
