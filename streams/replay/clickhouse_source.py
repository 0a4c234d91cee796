"""Score records rebuilt from ClickHouse's ``scores`` table, for replays beyond the topic's retention.

The sink keeps every chunk's frame logits, labels, probabilities, per-frame voice activity (``speech``, which
speech-only and conversation rules read; ``energy_db``, ``vad``), attributes, gap/end flags and model, so a
FrameScores record can be rebuilt exactly (``event_time`` is ``ts`` in ms; the logits are Float32 as
on the topic). Calls are read in pages (keyset pagination on ``call_id``), so a window of months is
never held in memory at once. The table is a ReplacingMergeTree: each chunk is read once
(``FINAL`` + ``LIMIT 1 BY call_id, role, seq``, the latest insert). Within a call the rows are ordered
by their Kafka offset: the order the rules worker read them in, which matters when the roles of a call
interleave (an alert on one role can inhibit another's). No Kafka here.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from emowatch.streams.replay.params import Scope, Window

__all__ = ["ClickHouseScores"]

PAGE_CALLS = 100
"""Calls per page (a call of 3 minutes is ~180 rows of ~2 kB of logits)."""

_COLUMNS = ("business_line, call_id, role, seq, start_ms, toUnixTimestamp64Milli(ts) AS event_time, frame_ms, "
            "n_frames, labels, probs, logits, gap_before, end_of_call, model, model_version, attributes, "
            "kafka_partition, kafka_offset, speech, energy_db, vad")


class ClickHouseScores:
    """Iterates FrameScores dicts of the calls in ``window`` and ``scope``, call by call.

    ``model_version`` (optional) reads only scores of that model version (e.g. a re-scored copy)."""

    def __init__(self, client: Any, database: str, window: Window, scope: Scope, *, model_version: str | None = None,
                 page_calls: int = PAGE_CALLS) -> None:
        self.client, self.db = client, database
        self.window, self.scope = window, scope
        self.model_version = model_version
        self.page_calls = page_calls
        self.rows = 0
        self.pages = 0

    def _where(self) -> tuple[str, dict[str, Any]]:
        conds = ["ts >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC')",
                 "toUnixTimestamp64Milli(ts) - start_ms >= {from_ms:Int64}"]
        params: dict[str, Any] = {"from_ms": self.window.from_ms}
        if self.window.to_ms is not None:
            conds.append("ts < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')")
            params["to_ms"] = self.window.to_ms
        if self.scope.business_line != "*":
            conds.append("business_line = {bl:String}")
            params["bl"] = self.scope.business_line
        if self.scope.calls:
            conds.append("call_id IN {calls:Array(String)}")
            params["calls"] = sorted(self.scope.calls)
        if self.model_version is not None:
            conds.append("model_version = {mv:String}")
            params["mv"] = self.model_version
        return " AND ".join(conds), params

    def count_calls(self) -> int:
        """How many calls the replay will read (for the progress bar)."""
        where, params = self._where()
        res = self.client.query(f"SELECT uniqExact(call_id) FROM {self.db}.scores WHERE {where}", parameters=params)
        return int(res.result_rows[0][0])

    def call_pages(self) -> Iterator[list[str]]:
        """Call ids in the window, sorted, ``page_calls`` at a time."""
        where, params = self._where()
        after = ""
        while True:
            res = self.client.query(
                f"SELECT call_id FROM {self.db}.scores WHERE {where} AND call_id > {{after:String}} "
                "GROUP BY call_id ORDER BY call_id LIMIT {n:UInt32}", parameters={**params, "after": after,
                                                                                "n": self.page_calls})
            ids = [row[0] for row in res.result_rows]
            if not ids:
                return
            yield ids
            after = ids[-1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        where, params = self._where()
        for ids in self.call_pages():
            res = self.client.query(
                f"SELECT {_COLUMNS} FROM (SELECT * FROM {self.db}.scores FINAL WHERE {where} "
                "AND call_id IN {ids:Array(String)} ORDER BY inserted_at DESC LIMIT 1 BY call_id, role, seq) "
                "ORDER BY call_id, kafka_offset, role, seq", parameters={**params, "ids": ids})
            self.pages += 1
            names = res.column_names
            for row in res.result_rows:
                self.rows += 1
                yield record_of(dict(zip(names, row)))


def record_of(r: dict[str, Any]) -> dict[str, Any]:
    """A ``scores`` row as the FrameScores record the topic held."""
    return {
        "call_id": r["call_id"], "role": r["role"], "seq": int(r["seq"]), "start_ms": int(r["start_ms"]),
        "frame_ms": int(r["frame_ms"]), "n_frames": int(r["n_frames"]), "labels": list(r["labels"]),
        "logits": np.asarray(r["logits"], dtype=np.float32), "chunk_probs": np.asarray(r["probs"], dtype=np.float32),
        "model": {"name": r["model"], "version": r["model_version"]}, "business_line": r["business_line"],
        "event_time": int(r["event_time"]), "gap_before": bool(r["gap_before"]), "end_of_call": bool(r["end_of_call"]),
        "attributes": dict(r["attributes"]), "embedding": None, "trace_id": None,
        "speech": _frames(r.get("speech")), "energy_db": _frames(r.get("energy_db")), "vad": r.get("vad") or None,
    }


def _frames(values: Any) -> np.ndarray | None:
    """A per-frame voice-activity column: the sink stores "not computed" as an empty array (null on the topic)."""
    return None if values is None or len(values) == 0 else np.asarray(values, dtype=np.float32)
