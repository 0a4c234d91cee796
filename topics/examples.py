"""Valid sample records for every schema, for tests and docs.

``example_record("FrameScores")`` returns a fresh dict that encodes with any
shipped version of the schema (fields added in later versions have defaults)
and round-trips exactly: floats are chosen to be exact in float32.
"""

from __future__ import annotations

import copy
from typing import Any

from emowatch.topics.catalog import schema_names
from emowatch.topics.model_io import EMOTIONS, FRAME_MS, SAMPLE_RATE

__all__ = ["EXAMPLE_EVENT_TIME_MS", "example_record"]

#: 2024-01-02T03:04:05.678Z, the capture time used by the examples.
EXAMPLE_EVENT_TIME_MS = 1_704_164_645_678

_N_FRAMES = 5
# float32-exact values: k/16 for small k.
_LOGITS = [((f * 9 + c) % 16) / 16.0 - 0.5 for f in range(_N_FRAMES) for c in range(9)]
_PROBS = [0.0625] * 8 + [0.5]

_RULES_YAML = """\
rule_set: default
business_line: default
rules:
  - id: angry_customer
    when: {emotion: angry, above: 0.7, for: 3s}
    role: CUSTOMER
    priority: HIGH
    channels: [webhook]
"""

_EXAMPLES: dict[str, dict[str, Any]] = {
    "AudioChunk": {
        "call_id": "call-0001",
        "role": "CUSTOMER",
        "seq": 2,
        "start_ms": 2000,
        "event_time": EXAMPLE_EVENT_TIME_MS,
        "sample_rate": SAMPLE_RATE,
        "encoding": "PCM_S16LE",
        "channels": 1,
        # 0.1 s of a little-endian int16 ramp
        "audio": b"".join(((i * 37) % 2000 - 1000).to_bytes(2, "little", signed=True) for i in range(1600)),
        "business_line": "default",
        "end_of_call": False,
        "attributes": {"agent_id": "agent-7", "customer_tier": "gold"},
    },
    "FrameScores": {
        "call_id": "call-0001",
        "role": "CUSTOMER",
        "seq": 2,
        "start_ms": 2000,
        "frame_ms": FRAME_MS,
        "n_frames": _N_FRAMES,
        "labels": list(EMOTIONS),
        "logits": _LOGITS,
        "chunk_probs": _PROBS,
        "model": {"name": "iic/emotion2vec_plus_large", "version": "demo-0"},
        "business_line": "default",
        "event_time": EXAMPLE_EVENT_TIME_MS,
        "gap_before": False,
        "end_of_call": False,
        "attributes": {"agent_id": "agent-7"},
        "embedding": [0.25, -0.5, 0.75, 1.0],
    },
    "Alert": {
        "alert_id": "3f9a2c1b7d4e5f60",
        "status": "FIRING",
        "rule_id": "angry_customer",
        "rule_version": "sha256:0123abcd",
        "rule_set": "default",
        "priority": "HIGH",
        "action": "ALERT",
        "business_line": "default",
        "call_id": "call-0001",
        "role": "CUSTOMER",
        "emotions": ["angry"],
        "value": 0.8125,
        "threshold": 0.7,
        "started_ms": 1000,
        "fired_ms": 4000,
        "event_time": EXAMPLE_EVENT_TIME_MS + 2000,
        "channels": ["webhook"],
        "labels": {"rule_name": "Angry customer"},
        "replay_id": None,
    },
    "RuleSet": {
        "rule_set": "default",
        "version": "sha256:0123abcd",
        "business_line": "default",
        "source_yaml": _RULES_YAML,
        "source_name": "rules/default.yaml",
        "published_at": EXAMPLE_EVENT_TIME_MS,
    },
    "DeadLetter": {
        "stage": "DECODE",
        "reason": "unknown framing: first bytes 7b22 are neither the single-object magic c301 nor ...",
        "error_type": "SerdeError",
        "source_topic": "emowatch.scores.v1",
        "source_partition": 3,
        "source_offset": 1234,
        "key": b"call-0001",
        "value": b'{"not": "avro"}',
        "headers": [{"key": "traceparent", "value": b"00-abc-def-01"}, {"key": "empty", "value": None}],
        "call_id": "call-0001",
        "service": "emowatch-rules-default",
        "failed_at": EXAMPLE_EVENT_TIME_MS,
    },
    "Silence": {
        "id": "6f1c1e9a-3b7d-4c52-9a2e-0d4b8f1e2a77",
        "matchers": ['business_line="collections"', 'priority=~"HIGH|CRITICAL"'],
        "starts_at": EXAMPLE_EVENT_TIME_MS,
        "ends_at": EXAMPLE_EVENT_TIME_MS + 3_600_000,
        "created_by": "li.wei",
        "comment": "maintenance of the collections dialler",
        "created_at": EXAMPLE_EVENT_TIME_MS,
        "expired_at": None,
        "expired_by": None,
    },
    "Ack": {
        "alert_id": "3f9a2c1b7d4e5f60",
        "by": "li.wei",
        "comment": "calling the customer back",
        "at": EXAMPLE_EVENT_TIME_MS + 5000,
        "call_id": "call-0001",
    },
    "NotificationLog": {
        "receiver": "collections-oncall",
        "group_key": '{}/{business_line="collections"}/0:collections-oncall:{call_id="call-0001"}',
        "status": "FIRING",
        "alerts": [{"alert_id": "3f9a2c1b7d4e5f60", "status": "FIRING"}],
        "repeat": 0,
        "sent_at": EXAMPLE_EVENT_TIME_MS + 6000,
        "idempotency_key": "9b4f0c6d2a1e8f7b3c5d9e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e",
    },
}


def example_record(schema_name: str, **overrides: Any) -> dict[str, Any]:
    """Return a fresh, valid record of ``schema_name`` with ``overrides`` applied.

    Raises ``KeyError`` for a schema without an example (every shipped schema has one).
    """
    if schema_name not in _EXAMPLES:
        raise KeyError(f"no example for schema {schema_name!r}; known: {', '.join(schema_names())}")
    record = copy.deepcopy(_EXAMPLES[schema_name])
    record.update(overrides)
    return record
