"""A small history in the embedded ClickHouse, written through the sink's row path, with duplicates that stay
unmerged (merges stopped), and its records in Python for independent expected values.

Calls (1 s chunks of 50 frames; each chunk's first 30 frames lean to one emotion, the last 20 to another):
c-1 retail/ag-1 (CUSTOMER 3 chunks, AGENT 2), c-2 retail/ag-1, c-3 vip/ag-2 (CUSTOMER only), c-4 retail
without agent (MIXED, three days old). Duplicates: c-1 CUSTOMER seq 1 and all of c-3 delivered twice, c-2
CUSTOMER seq 1 re-scored later as ``unknown`` (the newer version wins). Alerts: c-1 FIRING (twice) and
RESOLVED, c-3 FIRING and a replay's FIRING (excluded), c-4 FIRING three days ago.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from emowatch.models.timeline import softmax, step_probs
from emowatch.rules.examples import probs_to_logits
from emowatch.streams.sink.clickhouse import apply_schema, connect
from emowatch.streams.sink.rows import ALERTS_COLUMNS, SCORES_COLUMNS, alerts_row, scores_row
from emowatch.topics.examples import example_record
from emowatch.topics.model_io import EMOTIONS

DB = "emowatch"
NOW_MS = int(time.time() * 1000)
RECENT = NOW_MS - 2 * 3600 * 1000
OLD = NOW_MS - 3 * 24 * 3600 * 1000
CALLS = [  # call_id, business line, agent, first event time, {role: [(emotion of frames 0-29, of 30-49), ...]}
    ("c-1", "retail", "ag-1", RECENT, {"CUSTOMER": [("neutral", "neutral"), ("angry", "angry"), ("angry", "fearful")],
                                       "AGENT": [("neutral", "happy"), ("neutral", "neutral")]}),
    ("c-2", "retail", "ag-1", RECENT + 60_000, {"CUSTOMER": [("happy", "happy"), ("sad", "sad")],
                                                "AGENT": [("neutral", "neutral")]}),
    ("c-3", "vip", "ag-2", RECENT + 120_000, {"CUSTOMER": [("angry", "angry"), ("angry", "angry"),
                                                           ("other", "other")]}),
    ("c-4", "retail", "", OLD, {"MIXED": [("fearful", "fearful"), ("neutral", "neutral")]}),
]
RESCORED = ("c-2", "CUSTOMER", 1, ("unknown", "unknown"))  # a newer version of this chunk


def chunk_logits(first: str, second: str) -> np.ndarray:
    rows = [probs_to_logits({first: 0.8})] * 30 + [probs_to_logits({second: 0.8})] * 20
    return np.asarray(rows, dtype=np.float32)


def scores_record(call_id, line, agent, t0, role, seq, emotions, embedding=None):
    rec = example_record("FrameScores")
    logits = chunk_logits(*emotions)
    rec.update(call_id=call_id, business_line=line, role=role, seq=seq, start_ms=seq * 1000, n_frames=50,
               event_time=t0 + seq * 1000, logits=logits.ravel().tolist(), labels=list(EMOTIONS),
               chunk_probs=softmax(logits.astype(np.float64).mean(axis=0)).astype(float).tolist(),
               attributes={"agent_id": agent} if agent else {}, embedding=embedding)
    return rec


def alert_record(call_id, line, t0, alert_id, status, rule_id, priority, role, started, fired, replay_id=None):
    rec = example_record("Alert")
    rec.update(call_id=call_id, business_line=line, alert_id=alert_id, status=status, rule_id=rule_id,
               priority=priority, role=role, started_ms=started, fired_ms=fired, event_time=t0 + fired,
               replay_id=replay_id)
    return rec


def embedding_of(call_id: str, role: str, seq: int) -> list[float] | None:
    """c-1's chunks carry an 8-dim embedding, except AGENT seq 1 (stored without one)."""
    if call_id != "c-1" or (role, seq) == ("AGENT", 1):
        return None
    return [float(seq), float(len(role)), 0.5, -0.25, 1.0, 2.0, -3.0, 0.125]


@dataclass
class History:
    client: object
    data_dir: object
    chunks: dict = field(default_factory=dict)  # (call_id, role, seq) -> the newest record
    alerts: list = field(default_factory=list)  # distinct alert events as stored (incl. the replay's)

    def steps(self):
        """(record, step, top emotion) of every 200 ms step of the newest chunks."""
        for rec in self.chunks.values():
            lg = np.asarray(rec["logits"], dtype=np.float32).reshape(rec["n_frames"], len(rec["labels"]))
            for i, p in enumerate(step_probs(lg, frame_ms=rec["frame_ms"], step_ms=200)):
                yield rec, i, rec["labels"][int(np.argmax(p))]


def _insert(client, table, cols, rows, token):
    client.insert(table, rows, database=DB, column_names=cols, settings={"insert_deduplication_token": token})


def build_history(data_dir) -> History:
    """Write the history under ``data_dir``; the History holds the open client."""
    client = connect(None, data_dir, DB)
    apply_schema(client, DB)
    for table in ("scores", "alerts", "emotion_steps", "embedding_files"):
        client.command(f"SYSTEM STOP MERGES {DB}.{table}")  # the duplicates stay unmerged
    h = History(client, data_dir)
    offset = 0
    for call_id, line, agent, t0, roles in CALLS:
        rows = []
        for role, chunks in roles.items():
            for seq, emotions in enumerate(chunks):
                rec = scores_record(call_id, line, agent, t0, role, seq, emotions, embedding_of(call_id, role, seq))
                h.chunks[(call_id, role, seq)] = rec
                rows.append(scores_row(rec, 0, offset))
                offset += 1
        _insert(client, "scores", SCORES_COLUMNS, rows, f"first-{call_id}")
        if call_id in ("c-1", "c-3"):  # delivered again (new offsets, another batch): stored twice
            again = [scores_row(r, 1, 1000 + i) for i, r in enumerate(h.chunks.values())
                     if r["call_id"] == call_id and (call_id == "c-3" or (r["role"], r["seq"]) == ("CUSTOMER", 1))]
            _insert(client, "scores", SCORES_COLUMNS, again, f"again-{call_id}")
    call_id, role, seq, emotions = RESCORED
    line, agent, t0 = next((c[1], c[2], c[3]) for c in CALLS if c[0] == call_id)
    newer = scores_record(call_id, line, agent, t0, role, seq, emotions)
    h.chunks[(call_id, role, seq)] = newer
    later = datetime.fromtimestamp(NOW_MS / 1000 + 3600, tz=UTC)
    _insert(client, "scores", [*SCORES_COLUMNS, "inserted_at"], [scores_row(newer, 0, 2000) + [later]], "rescored")
    events = [
        alert_record("c-1", "retail", RECENT, "al-1", "FIRING", "angry-sustained", "HIGH", "CUSTOMER", 1500, 2500),
        alert_record("c-1", "retail", RECENT, "al-1", "RESOLVED", "angry-sustained", "HIGH", "CUSTOMER", 1500, 4000),
        alert_record("c-3", "vip", RECENT + 120_000, "al-3", "FIRING", "vip-angry", "MEDIUM", "CUSTOMER", 0, 1800),
        alert_record("c-3", "vip", RECENT + 120_000, "al-r", "FIRING", "vip-angry", "MEDIUM", "CUSTOMER", 0, 900,
                     replay_id="replay-1"),
        alert_record("c-4", "retail", OLD, "al-4", "FIRING", "fear", "LOW", "MIXED", 0, 1200),
    ]
    h.alerts = events
    _insert(client, "alerts", ALERTS_COLUMNS, [alerts_row(a, 0, i) for i, a in enumerate(events)], "alerts-1")
    _insert(client, "alerts", ALERTS_COLUMNS, [alerts_row(events[0], 1, 99)], "alerts-again")  # al-1 FIRING twice
    assert client.query(f"SELECT count() FROM {DB}.scores").result_rows[0][0] > len(h.chunks)  # unmerged copies
    return h
