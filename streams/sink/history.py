"""History reads for the console: the calls, one call's timeline and alerts, alerts with filters.

Runs where the data is: in the sink process next to the embedded ClickHouse (chDB allows one process
per data directory), or anywhere against a ClickHouse server; the same queries either way. Every query
is parameterised (clickhouse-connect ``parameters=``); user input is never formatted into SQL.

Tables are ReplacingMergeTree and a chunk re-scored after a crash counts once although copies may be
stored until a merge: a read keeps the newest copy per natural key (``ORDER BY inserted_at DESC LIMIT 1
BY ...``, or in numpy for a call's chunks) or uses aggregates a copy cannot change (``min(ts)``,
``uniqExact``); ``FINAL`` only on the small alerts table (over the scores it reads every granule of the
key range, docs/benchmarks.md "History at scale"). A call's timeline per role is the frame logits of
its chunks concatenated in ``start_ms`` order, drawn with :mod:`emowatch.models.timeline` like the
upload page (a missing chunk's frames are absent: the steps after it move up by its length; its
successor carries ``gap_before``).
JSON shapes: docs/gateway.md "History".
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from emowatch.models.timeline import DEFAULT_STEP_MS, EMOJI, segments, softmax, step_probs, summary, top_of

__all__ = ["ALERT_FIELDS", "HistoryReader"]

_DIGITS = 6
#: the Alert record's fields as the history returns them (``event_time`` in epoch ms, like the live feed)
ALERT_FIELDS = ("alert_id", "status", "rule_id", "rule_version", "rule_set", "priority", "action", "business_line",
                "call_id", "role", "emotions", "value", "threshold", "started_ms", "fired_ms", "event_time",
                "channels", "labels")
_ALERT_SELECT = ", ".join("toUnixTimestamp64Milli(ts) AS event_time" if f == "event_time" else f
                          for f in ALERT_FIELDS)


def _r(x: Any) -> list:
    return np.round(np.asarray(x, dtype=np.float64), _DIGITS).tolist()


def _utterance(mean_logits: np.ndarray, labels: list[str]) -> dict:
    z = np.asarray(mean_logits, dtype=np.float64).copy()
    z[[i for i, lb in enumerate(labels) if lb.startswith("unuse")]] = -np.inf  # as the model masks them
    probs = softmax(z)
    top, confidence = top_of(probs, tuple(labels))
    return {"probs": _r(probs), "top": top, "emoji": EMOJI.get(top, ""), "confidence": round(confidence, _DIGITS)}


class HistoryReader:
    """Read queries over the sink's tables.

    Args:
        client: a clickhouse-connect client of its own (not the sink's inserting one): a server client
            allows one query at a time per session, so the reader serialises its queries with a lock.
        database: the sink's database (``EMOWATCH_SINK__DATABASE``).
    """

    def __init__(self, client: Any, database: str) -> None:
        self.client = client
        self.db = database
        self._lock = threading.Lock()

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        with self._lock:
            res = self.client.query(sql.replace("{db}", self.db), parameters=params)
        return [dict(zip(res.column_names, row)) for row in res.result_rows]

    # ------------------------------------------------------------------ calls
    def calls(self, since: int, until: int, business_line: str | None = None, limit: int = 100) -> list[dict]:
        """Calls with scores in ``[since, until)`` (epoch ms), newest first, at most ``limit``."""
        bl = "AND business_line = {bl:String}" if business_line is not None else ""
        window = {"since": int(since), "until": int(until), "bl": business_line or "", "limit": int(limit)}
        heads = self._rows(f"""
            SELECT business_line, call_id, toUnixTimestamp64Milli(min(ts)) AS first_ms
            FROM {{db}}.scores
            WHERE ts >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
              AND ts < fromUnixTimestamp64Milli({{until:Int64}}, 'UTC') {bl}
            GROUP BY business_line, call_id ORDER BY first_ms DESC, call_id LIMIT {{limit:UInt32}}""", window)
        if not heads:
            return []
        ids = {"ids": [h["call_id"] for h in heads]}
        per_role = self._rows("""
            SELECT call_id, role, count() AS chunks, sum(n_frames) AS frames, any(labels) AS label_names,
                   sumForEach(logit_sums) AS logit_sums,
                   toUnixTimestamp64Milli(min(ts)) AS first_ms, toUnixTimestamp64Milli(max(ts)) AS last_ms,
                   min(start_ms) AS first_start_ms, max(start_ms + n_frames * frame_ms) AS end_ms,
                   max(end_of_call) AS ended
            FROM (SELECT call_id, role, seq, ts, start_ms, frame_ms, n_frames, labels, logit_sums, end_of_call
                  FROM {db}.scores WHERE call_id IN {ids:Array(String)}
                  ORDER BY inserted_at DESC LIMIT 1 BY call_id, role, seq)
            GROUP BY call_id, role ORDER BY call_id, role""", ids)
        alerts = {r["call_id"]: r["n"] for r in self._rows("""
            SELECT call_id, uniqExact(alert_id) AS n FROM {db}.alerts
            WHERE call_id IN {ids:Array(String)} AND replay_id = '' AND status = 'FIRING'
            GROUP BY call_id""", ids)}
        out = []
        for h in heads:
            rows = [r for r in per_role if r["call_id"] == h["call_id"]]
            if not rows:
                continue
            roles = {}
            for r in rows:
                mean = np.asarray(r["logit_sums"], dtype=np.float64) / max(1, r["frames"])
                u = _utterance(mean, list(r["label_names"]))
                roles[r["role"]] = {"top": u["top"], "emoji": u["emoji"], "confidence": u["confidence"],
                                    "chunks": r["chunks"]}
            out.append({
                "call_id": h["call_id"], "business_line": h["business_line"], "roles": roles,
                "first_event_time": min(r["first_ms"] for r in rows),
                "last_event_time": max(r["last_ms"] for r in rows),
                "duration_ms": max(r["end_ms"] for r in rows) - min(r["first_start_ms"] for r in rows),
                "chunks": sum(r["chunks"] for r in rows), "ended": any(bool(r["ended"]) for r in rows),
                "alerts": alerts.get(h["call_id"], 0),
            })
        return out

    def call(self, call_id: str) -> dict | None:
        """One call: per role its timeline (200 ms steps), segments, summary and utterance; its alerts.
        None for a call without scores."""
        chunks = self._chunks(call_id)
        if chunks is None:
            return None
        business_line, agent, labels, per_role = chunks
        roles: dict[str, dict] = {}
        for role, c in per_role.items():
            lg = c["logits"]
            frame_ms, start_ms = int(c["frame_ms"][0]), int(c["start_ms"][0])
            steps = step_probs(lg, frame_ms=frame_ms, step_ms=DEFAULT_STEP_MS)
            segs = segments(steps, step_ms=DEFAULT_STEP_MS, labels=tuple(labels), start_ms=start_ms)
            roles[role] = {
                "timeline": {"step_ms": DEFAULT_STEP_MS, "start_ms": start_ms, "probs": _r(steps)},
                "segments": [s.as_dict() for s in segs], "summary": summary(segs),
                "utterance": _utterance(lg.mean(axis=0, dtype=np.float64), labels),
                "chunks": len(c["start_ms"]), "gaps": int(np.count_nonzero(c["gap_before"])),
            }
        starts = np.concatenate([c["start_ms"] for c in per_role.values()])
        ends = np.concatenate([c["start_ms"] + c["n_frames"] * c["frame_ms"] for c in per_role.values()])
        return {"call_id": call_id, "business_line": business_line, "agent": agent,
                "duration_ms": int(ends.max() - starts.min()), "labels": labels, "roles": roles,
                "alerts": self.alerts(call_id=call_id, limit=10_000, newest_first=False)}

    def _chunks(self, call_id: str) -> tuple[str, str, list[str], dict[str, dict[str, np.ndarray]]] | None:
        """The call's chunks, one per (role, seq) - the newest copy (``inserted_at``), as FINAL and the natural
        key would keep - in (start_ms, seq) order per role (roles sorted): the business line, the agent, the labels and
        per role its columns and frame logits concatenated (n_frames x labels, float32). None: no chunk.

        Every stored copy is read and the newest picked here: no FINAL (with it the call_id condition is not a
        PREWHERE, and the logits of every granule the key range selects were read) and no ORDER BY in SQL (it
        moved every copy's logits). Arrow: the logits arrive as one float32 buffer, not a Python float each."""
        with self._lock:
            table = self.client.query_arrow("""
                SELECT business_line, agent, role, seq, start_ms, frame_ms, n_frames, labels, logits, gap_before,
                       toUnixTimestamp64Milli(inserted_at) AS inserted_ms
                FROM {db}.scores WHERE call_id = {call_id:String}""".replace("{db}", self.db),
                                            parameters={"call_id": call_id}, use_strings=True)
        if table.num_rows == 0:
            return None
        num = {name: np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.int64)
               for name in ("seq", "start_ms", "frame_ms", "n_frames", "inserted_ms")}
        num["gap_before"] = np.asarray(table.column("gap_before").to_numpy(zero_copy_only=False), dtype=bool)
        labels = [str(x) for x in table.column("labels")[0].as_py()]
        arr = table.column("logits").combine_chunks()
        flat = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        bounds = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
        bounds -= bounds[0]
        if not np.array_equal(np.diff(bounds), num["n_frames"] * len(labels)):
            raise ValueError(f"call {call_id}: a chunk's logits are not n_frames x {len(labels)} labels")
        names, role_no = np.unique(np.asarray(table.column("role").to_pylist(), dtype=object), return_inverse=True)
        seq = num["seq"]
        newest = np.lexsort((-num["inserted_ms"], seq, role_no))
        first = np.ones(len(newest), dtype=bool)  # the first of each (role, seq) run: its newest copy
        first[1:] = (role_no[newest][1:] != role_no[newest][:-1]) | (seq[newest][1:] != seq[newest][:-1])
        kept = newest[first]
        order = kept[np.lexsort((seq[kept], num["start_ms"][kept], role_no[kept]))]
        per_role = {}
        for no, role in enumerate(names):
            idx = order[role_no[order] == no]
            if np.array_equal(idx, np.arange(idx[0], idx[-1] + 1)):  # stored in order, no copies: one slice
                part = flat[bounds[idx[0]]:bounds[idx[-1] + 1]]
            else:
                part = np.concatenate([flat[bounds[i]:bounds[i + 1]] for i in idx])
            per_role[str(role)] = {**{k: v[idx] for k, v in num.items()}, "logits": part.reshape(-1, len(labels))}
        head = int(order[0])
        return (str(table.column("business_line")[head].as_py()), str(table.column("agent")[head].as_py()), labels,
                per_role)

    # ------------------------------------------------------------------ alerts
    def alerts(self, business_line: str | None = None, priority: list[str] | None = None,
               status: list[str] | None = None, rule_id: str | None = None, since: int | None = None,
               until: int | None = None, limit: int = 100, *, call_id: str | None = None,
               newest_first: bool = True) -> list[dict]:
        """Alert events (FIRING and RESOLVED; replays excluded), newest first unless ``newest_first=False``."""
        where, params = ["replay_id = ''"], {"limit": int(limit)}
        for name, value, cond in (
            ("bl", business_line, "business_line = {bl:String}"),
            ("prio", priority, "priority IN {prio:Array(String)}"),
            ("status", status, "status IN {status:Array(String)}"),
            ("rule", rule_id, "rule_id = {rule:String}"),
            ("call", call_id, "call_id = {call:String}"),
            ("since", since, "ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"),
            ("until", until, "ts < fromUnixTimestamp64Milli({until:Int64}, 'UTC')"),
        ):
            if value is not None:
                where.append(cond)
                params[name] = value
        order = "DESC" if newest_first else "ASC"
        rows = self._rows(f"""
            SELECT {_ALERT_SELECT} FROM {{db}}.alerts FINAL WHERE {' AND '.join(where)}
            ORDER BY ts {order}, alert_id, status LIMIT {{limit:UInt32}}""", params)
        for r in rows:
            r["labels"] = dict(r["labels"])
            r["emotions"], r["channels"] = list(r["emotions"]), list(r["channels"])
        return rows
