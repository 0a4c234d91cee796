"""Avro records -> ClickHouse rows for the sink. Pure."""
from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

SCORES_COLUMNS = ["business_line", "call_id", "role", "seq", "start_ms", "ts", "frame_ms", "n_frames", "labels",
                  "probs", "top_emotion", "top_prob", "logits", "embedding", "gap_before", "end_of_call", "model",
                  "model_version", "attributes", "kafka_partition", "kafka_offset"]
ALERTS_COLUMNS = ["business_line", "call_id", "ts", "alert_id", "status", "rule_id", "rule_version", "rule_set",
                  "priority", "action", "role", "emotions", "value", "threshold", "started_ms", "fired_ms",
                  "channels", "labels", "replay_id", "kafka_partition", "kafka_offset"]


def _ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC)


def scores_row(r: dict, partition: int, offset: int) -> list:
    probs = r["chunk_probs"]
    top = int(np.argmax(probs)) if probs else 0
    labels = r["labels"]
    return [r["business_line"], r["call_id"], r["role"], r["seq"], r["start_ms"], _ts(r["event_time"]),
            r["frame_ms"], r["n_frames"], labels, probs,
            labels[top] if labels else "", float(probs[top]) if probs else 0.0,
            r["logits"], r.get("embedding") or [], r["gap_before"], r["end_of_call"], r["model"]["name"],
            r["model"]["version"], r.get("attributes") or {}, partition, offset]


def alerts_row(r: dict, partition: int, offset: int) -> list:
    return [r["business_line"], r["call_id"], _ts(r["event_time"]), r["alert_id"], r["status"], r["rule_id"],
            r["rule_version"], r["rule_set"], r["priority"], r.get("action", "ALERT"), r["role"], r["emotions"],
            float(r["value"]), float(r["threshold"]), r["started_ms"], r["fired_ms"], r.get("channels") or [],
            r.get("labels") or {}, r.get("replay_id") or "", partition, offset]
