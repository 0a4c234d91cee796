"""Avro records -> ClickHouse rows for the sink. Pure.

Float arrays may be lists (fastavro) or numpy arrays (the sink decodes with ``float_arrays="numpy"``);
rows keep them as given. ``*_NATIVE`` are the types each column is sent as in a Native block
(:mod:`emowatch.streams.sink.native`): the table's type, or the plain type ClickHouse converts from.
"""
from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np

SCORES_NATIVE = [
    ("business_line", "String"), ("call_id", "String"), ("role", "String"), ("seq", "Int64"), ("start_ms", "Int64"),
    ("ts", "DateTime64(3, 'UTC')"), ("frame_ms", "UInt16"), ("n_frames", "UInt16"), ("labels", "Array(String)"),
    ("probs", "Array(Float32)"), ("top_emotion", "String"), ("top_prob", "Float32"), ("logits", "Array(Float32)"),
    ("embedding", "Array(Float32)"), ("gap_before", "Bool"), ("end_of_call", "Bool"), ("model", "String"),
    ("model_version", "String"), ("attributes", "Map(String, String)"), ("kafka_partition", "UInt16"),
    ("kafka_offset", "Int64"), ("speech", "Array(Float32)"), ("energy_db", "Array(Float32)"), ("vad", "String")]
ALERTS_NATIVE = [
    ("business_line", "String"), ("call_id", "String"), ("ts", "DateTime64(3, 'UTC')"), ("alert_id", "String"),
    ("status", "String"), ("rule_id", "String"), ("rule_version", "String"), ("rule_set", "String"),
    ("priority", "String"), ("action", "String"), ("role", "String"), ("emotions", "Array(String)"),
    ("value", "Float64"), ("threshold", "Float64"), ("started_ms", "Int64"), ("fired_ms", "Int64"),
    ("channels", "Array(String)"), ("labels", "Map(String, String)"), ("replay_id", "String"),
    ("kafka_partition", "UInt16"), ("kafka_offset", "Int64")]
SCORES_COLUMNS = [name for name, _type in SCORES_NATIVE]
ALERTS_COLUMNS = [name for name, _type in ALERTS_NATIVE]


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def scores_row(r: dict, partition: int, offset: int) -> list:
    """One ``scores`` row; ``speech``/``energy_db`` null (not computed, or a record older than FrameScores v3)
    are stored as empty arrays and ``vad`` null as ''. ``ValueError`` (the sink dead-letters the message) when
    the frame arrays do not fit ``n_frames`` (stored, they would misalign every frame-level read), ``chunk_probs``
    not the labels, or the scores are not finite."""
    _check_frames(r)
    probs = r["chunk_probs"]
    top = int(np.argmax(probs)) if len(probs) else 0
    labels = r["labels"]
    embedding = r.get("embedding")
    return [r["business_line"], r["call_id"], r["role"], r["seq"], r["start_ms"], _ts(r["event_time"]),
            r["frame_ms"], r["n_frames"], labels, probs,
            labels[top] if labels else "", float(probs[top]) if len(probs) else 0.0,
            r["logits"], [] if embedding is None else embedding, r["gap_before"], r["end_of_call"],
            r["model"]["name"], r["model"]["version"], r.get("attributes") or {}, partition, offset,
            _array(r.get("speech")), _array(r.get("energy_db")), r.get("vad") or ""]


def _check_frames(r: dict) -> None:
    n, labels = r["n_frames"], len(r["labels"])
    if len(r["logits"]) != n * labels:
        raise ValueError(f"logits has {len(r['logits'])} values, expected n_frames x labels = {n} x {labels}")
    if len(r["chunk_probs"]) != labels:  # the row's top emotion would be read against the wrong label
        raise ValueError(f"chunk_probs has {len(r['chunk_probs'])} values, expected one per label ({labels})")
    for name in ("logits", "chunk_probs"):  # the rules worker refuses them too; stored, they poison every average
        if not _finite(r[name]):
            raise ValueError(f"{name} hold NaN or infinity")
    for name in ("speech", "energy_db"):
        values = r.get(name)
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} values, expected one per frame (n_frames = {n})")
    speech = None if r.get("speech") is None else np.asarray(r["speech"])
    if speech is not None and speech.size and not np.all((speech >= 0) & (speech <= 1)):
        raise ValueError("speech holds a value outside [0, 1] (a probability per frame)")


def _finite(values) -> bool:
    """No NaN or infinity in ``values``: the sum is finite for finite values (one pass: numpy's reduction in float64
    for the sink's decoded arrays, Python's ``sum`` for a list, ~2 us for 450 values either way), then the exact
    check only when it is not (an overflow of finite values included)."""
    total = values.sum(dtype=np.float64) if isinstance(values, np.ndarray) else sum(values)
    return math.isfinite(total) or bool(np.isfinite(np.asarray(values, dtype=np.float64)).all())


def _array(values):
    return [] if values is None else values


def alerts_row(r: dict, partition: int, offset: int) -> list:
    return [r["business_line"], r["call_id"], _ts(r["event_time"]), r["alert_id"], r["status"], r["rule_id"],
            r["rule_version"], r["rule_set"], r["priority"], r.get("action", "ALERT"), r["role"], r["emotions"],
            float(r["value"]), float(r["threshold"]), r["started_ms"], r["fired_ms"], r.get("channels") or [],
            r.get("labels") or {}, r.get("replay_id") or "", partition, offset]
