"""What ``emowatch bench pipeline`` observes: the scores and alerts topics, each component's CPU and memory,
and the rows the sink wrote to ClickHouse.

Every time is the wall clock of this machine (``time.time()``), the clock the client processes stamp their
chunks with and the webhook receiver its arrivals with.
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

from emowatch.bench.machine import machine_cpu_seconds, process_cpu_seconds, process_rss_mb


class TopicWatch(threading.Thread):
    """Tails the scores and alerts topics from the beginning: when each chunk record's scores and each alert
    event were first seen, and how often each was seen (a repeat on the topic is a redelivery)."""

    def __init__(self, kafka, topics) -> None:
        super().__init__(name="bench-topic-watch", daemon=True)
        self.kafka, self.topics = kafka, topics
        self.scores: dict[tuple[str, str, int], float] = {}
        self.score_copies = 0  # scores records seen again (same call, role, seq)
        self.alerts: dict[tuple[str, str], tuple[float, dict]] = {}  # (alert_id, status) -> (first seen, record)
        self.alert_copies = 0
        self.undecodable = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        from emowatch.streams.kafka.tail import TopicTail

        try:
            tail = TopicTail(self.kafka, {self.topics.scores: "FrameScores", self.topics.alerts: "Alert"})
            try:
                while not self._halt.is_set():
                    for topic, rec, _raw in tail.poll(0.05):
                        now = time.time()
                        if rec is None:
                            self.undecodable += 1
                        elif topic == self.topics.scores:
                            key = (rec["call_id"], rec["role"], int(rec["seq"]))
                            if key in self.scores:
                                self.score_copies += 1
                            else:
                                self.scores[key] = now
                        else:
                            akey = (rec["alert_id"], rec["status"])
                            if akey in self.alerts:
                                self.alert_copies += 1
                            else:
                                self.alerts[akey] = (now, rec)
            finally:
                tail.close()
        except BaseException as exc:  # noqa: BLE001 - raised by the bench's check()
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"the bench's topic reader failed: {self.error}") from self.error

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


class Resources:
    """CPU seconds (``/proc/<pid>/stat``) and resident memory (``VmRSS``) of named processes: CPU as cores
    used between :meth:`start` and :meth:`result`, memory as the largest of the samples taken meanwhile; and the
    whole machine's (:meth:`machine`): what the named processes leave out is the kernel's work for them (the
    loopback network, scheduling) and anything else running."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._cpu0: dict[str, float] = {}
        self._t0 = 0.0
        self._rss: dict[str, float] = {}
        self._machine0: dict[str, float] = {}

    def start(self) -> None:
        self._cpu0 = {k: self._cpu(p) for k, p in self.pids.items()}
        self._machine0 = machine_cpu_seconds()
        self._t0 = time.monotonic()
        self._rss = {}
        self.sample()

    @staticmethod
    def _cpu(pid: int) -> float:
        if pid == os.getpid():
            t = os.times()
            return t.user + t.system
        return process_cpu_seconds(pid)

    def sample(self) -> None:
        for k, p in self.pids.items():
            rss = process_rss_mb(p)
            if rss is not None:
                self._rss[k] = max(self._rss.get(k, 0.0), rss)

    def result(self) -> dict[str, dict[str, float | None]]:
        self.sample()
        wall = max(1e-9, time.monotonic() - self._t0)
        return {k: {"cpu_cores": round((self._cpu(p) - self._cpu0[k]) / wall, 3), "rss_mb": self._rss.get(k)}
                for k, p in self.pids.items()}

    def machine(self) -> dict[str, float | int]:
        """The whole machine since :meth:`start`: cores busy (every process and the kernel), stolen by the
        hypervisor, and the cores it has."""
        wall = max(1e-9, time.monotonic() - self._t0)
        now = machine_cpu_seconds()
        return {"busy_cores": round((now["busy"] - self._machine0["busy"]) / wall, 3),
                "steal_cores": round((now["steal"] - self._machine0["steal"]) / wall, 3),
                "cores": os.cpu_count() or 0}


def chunk_of(offset_ms: int) -> int:
    """The seq of the 1 s chunk whose end covers a call offset: the chunk that completed a condition at
    ``offset_ms`` (an alert's ``fired_ms``). Chunk k covers (k s, k + 1 s]; an offset of 0 is chunk 0."""
    return max(0, math.ceil(offset_ms / 1000.0) - 1)


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 1)


def clickhouse_counts(data_dir: Path, database: str = "emowatch") -> dict[str, dict[str, int]]:
    """Per step tag (the call id up to its first ``-``): score rows, distinct (call, role, seq) among them,
    alert rows and distinct (alert, status) among them, as stored (no ``FINAL``: a duplicate not merged away
    yet counts). The sink must be stopped (the embedded engine is one process per data folder)."""
    from emowatch.streams.sink.clickhouse import connect

    client = connect(None, data_dir, database)
    try:
        out: dict[str, dict[str, int]] = {}
        for table, key, names in (("scores", "call_id, role, seq", ("rows", "distinct_rows")),
                                  ("alerts", "alert_id, status", ("alert_rows", "distinct_alert_rows"))):
            res = client.query(f"SELECT splitByChar('-', call_id)[1] AS step, count(), uniqExact({key}) "
                               f"FROM {database}.{table} GROUP BY step")
            for step, n, distinct in res.result_rows:
                out.setdefault(step, {})[names[0]] = int(n)
                out[step][names[1]] = int(distinct)
        return out
    finally:
        client.close()


def step_latencies(calls: dict[str, dict[str, Any]], watch: TopicWatch, arrivals: dict[tuple[str, str], float],
                   prefix: str) -> dict[str, Any]:
    """Chunk -> score and condition-complete chunk -> alert (topic, webhook) latencies of one step's calls
    (``calls``: the client processes' records by call id; ``arrivals``: first webhook arrival per
    ``(alert_id, status)``)."""
    chunk_lat = [t - calls[c]["sent"][seq] for (c, _role, seq), t in watch.scores.items()
                 if c in calls and seq in calls[c]["sent"]]
    topic_lat, hook_lat = [], []
    firing = 0
    for (aid, status), (seen, rec) in list(watch.alerts.items()):
        if status != "FIRING" or not rec["call_id"].startswith(prefix) or rec["call_id"] not in calls:
            continue
        firing += 1
        start = calls[rec["call_id"]]["sent"].get(chunk_of(int(rec["fired_ms"])))
        if start is None:
            continue
        topic_lat.append(seen - start)
        # a FIRING the notifier only listed as RESOLVED (the episode ended before its group was notified: both
        # events came with the call's last chunk) reached the receiver with that notification
        hook = arrivals.get((aid, "FIRING"), arrivals.get((aid, "RESOLVED")))
        if hook is not None:
            hook_lat.append(hook - start)
    return {"chunk_to_score": chunk_lat, "alert_to_topic": topic_lat, "alert_to_webhook": hook_lat,
            "firing_alerts": firing}
