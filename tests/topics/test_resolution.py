"""Read plans: the projection shortcut gives exactly what Avro resolution gives."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest

from emowatch.topics.catalog import load_schema, strip_logical_types
from emowatch.topics.examples import example_record
from emowatch.topics.resolution import plan_read


def _info_like(raw: dict[str, Any]):
    """A SchemaInfo-shaped object for an ad-hoc reader schema."""
    from types import SimpleNamespace

    return SimpleNamespace(
        raw=raw,
        parsed=fastavro.parse_schema(strip_logical_types(raw)),
        canonical=fastavro.schema.to_parsing_canonical_form(raw),
    )


def _read_both(writer_raw: dict[str, Any], reader_raw: dict[str, Any], record: dict[str, Any]):
    w_parsed = fastavro.parse_schema(strip_logical_types(writer_raw))
    reader = _info_like(reader_raw)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, w_parsed, record)
    plan = plan_read("w", writer_raw, w_parsed, reader)
    via_plan = plan.read(io.BytesIO(body.getvalue()))
    via_fastavro = fastavro.schemaless_reader(io.BytesIO(body.getvalue()), w_parsed, reader.parsed)
    return plan, via_plan, via_fastavro


@pytest.mark.parametrize("name", ["Alert", "AudioChunk", "DeadLetter", "FrameScores", "RuleSet"])
@pytest.mark.parametrize(("w", "r"), [(1, 2), (2, 1), (1, 1)])
def test_shipped_versions_use_the_fast_plan(name: str, w: int, r: int) -> None:
    record = example_record(name, **({"trace_id": "abc"} if w == 2 else {}))
    plan, via_plan, via_fastavro = _read_both(load_schema(name, w).raw, load_schema(name, r).raw, record)
    assert plan.mode == ("same" if w == r else "projection")
    assert via_plan == via_fastavro


def _base() -> dict[str, Any]:
    return copy.deepcopy(load_schema("RuleSet", 1).raw)


def _with_field(raw: dict[str, Any], field: dict[str, Any], at: int | None = None) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    out["fields"].insert(len(out["fields"]) if at is None else at, field)
    return out


CASES = {
    # reader adds a field in the middle: still a projection (shared fields keep their order)
    "added-middle": (_base(), _with_field(_base(), {"name": "n", "type": "int", "default": 7}, at=2), "projection"),
    "added-map": (
        _base(),
        _with_field(_base(), {"name": "m", "type": {"type": "map", "values": "long"}, "default": {}}),
        "projection",
    ),
    "added-bytes": (_base(), _with_field(_base(), {"name": "b", "type": "bytes", "default": "\u00ff"}), "resolution"),
    "removed": (_with_field(_base(), {"name": "x", "type": "string"}), _base(), "projection"),
    "promoted": (
        _with_field(_base(), {"name": "p", "type": "int"}),
        _with_field(_base(), {"name": "p", "type": "long"}),
        "resolution",
    ),
    "reordered": (
        _base(),
        dict(_base(), fields=list(reversed(_base()["fields"]))),
        "resolution",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_plan_matches_fastavro_resolution(case: str) -> None:
    writer, reader, mode = CASES[case]
    record = example_record("RuleSet")
    for field in writer["fields"]:
        if field["name"] not in record:
            record[field["name"]] = "s" if field["type"] == "string" else 3
    plan, via_plan, via_fastavro = _read_both(writer, reader, record)
    assert plan.mode == mode
    assert via_plan == via_fastavro


def test_projection_defaults_are_fresh_objects() -> None:
    writer, reader, _ = CASES["added-map"]
    w_parsed = fastavro.parse_schema(writer)
    plan = plan_read("w", writer, w_parsed, _info_like(reader))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, w_parsed, example_record("RuleSet"))
    first = plan.read(io.BytesIO(body.getvalue()))
    first["m"]["k"] = 1
    assert plan.read(io.BytesIO(body.getvalue()))["m"] == {}
