"""Events match the Avro Alert record in topics/schemas (validated with fastavro)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SCHEMA = Path(__file__).resolve().parents[2] / "topics" / "schemas" / "Alert.v1.avsc"


@pytest.mark.skipif(not SCHEMA.exists(), reason="Alert schema not in this checkout")
def test_events_validate_against_the_alert_schema(ruleset, timeline, feed) -> None:
    fastavro = pytest.importorskip("fastavro")
    schema = fastavro.parse_schema(json.loads(SCHEMA.read_text()))
    rs = ruleset("- id: a\n  when: {sequence: [neutral, angry], within: 5s}\n  action: review\n"
                 "- id: b\n  when: {sum: [angry, sad], above: 0.6}\n  priority: critical\n  labels: {x: y}\n")
    msgs = timeline(rs, [{"for": "2s", "probs": {"neutral": 0.9}}, {"for": "3s", "probs": {"angry": 0.9}}],
                    attributes={"agent_id": "7"}, end_of_call=True)
    _, events = feed(rs, msgs)
    assert {e["status"] for e in events} == {"FIRING", "RESOLVED"} and len(events) == 4
    field_names = [f["name"] for f in json.loads(SCHEMA.read_text())["fields"]]
    for event in events:
        assert sorted(event) == sorted(field_names)
        fastavro.validation.validate(event, schema, raise_errors=True)
