"""FrameScores and Alert records for the gateway's tests (what the inference agent and rules workers write)."""
from __future__ import annotations

import time
import uuid

from emowatch.topics.model_io import EMOTIONS


def frame_scores(call_id: str, seq: int, *, role: str = "MIXED", angry: float = 0.05, end: bool = False,
                 business_line: str = "default") -> dict:
    rest = (1.0 - angry) / (len(EMOTIONS) - 1)
    probs = [angry if e == "angry" else rest for e in EMOTIONS]
    return {"call_id": call_id, "role": role, "seq": seq, "start_ms": seq * 1000, "frame_ms": 20, "n_frames": 50,
            "labels": list(EMOTIONS), "logits": [0.0] * (50 * len(EMOTIONS)), "chunk_probs": probs,
            "model": {"name": "test", "version": "1"}, "business_line": business_line,
            "event_time": int(time.time() * 1000), "gap_before": False, "end_of_call": end, "attributes": {},
            "embedding": None, "trace_id": None}


def alert(call_id: str, *, status: str = "FIRING", priority: str = "HIGH", alert_id: str | None = None) -> dict:
    return {"alert_id": alert_id or uuid.uuid4().hex, "status": status, "rule_id": "angry", "rule_version": "v1",
            "rule_set": "test", "priority": priority, "action": "ALERT", "business_line": "default",
            "call_id": call_id, "role": "CUSTOMER", "emotions": ["angry"], "value": 0.9, "threshold": 0.75,
            "started_ms": 1000, "fired_ms": 4000, "event_time": int(time.time() * 1000), "channels": [],
            "labels": {}, "replay_id": None, "trace_id": None}
