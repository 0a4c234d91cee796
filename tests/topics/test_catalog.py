"""Schema files and the schema catalogue (fingerprints, versions, docs)."""

from __future__ import annotations

import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.schema import fingerprint as fastavro_fingerprint

from emowatch.streams.resources import schemas_dir
from emowatch.topics import catalog
from emowatch.topics.catalog import (
    SchemaNotFoundError,
    crc64_avro,
    fingerprint_table,
    latest_version,
    load_schema,
    schema_names,
    strip_logical_types,
    versions,
)
from emowatch.topics.examples import example_record

SCHEMAS = ("Alert", "AudioChunk", "DeadLetter", "FrameScores", "RuleSet")
V1_ONLY = ("Ack", "NotificationLog", "Silence")  # the notifier's records, born with trace_id
V3 = ("FrameScores",)  # v3 adds the voice activity fields
ALL_VERSIONS = [(n, v) for n in SCHEMAS for v in versions(n)] + [(n, 1) for n in V1_ONLY]


def test_all_schemas_have_v1_and_v2() -> None:
    assert schema_names() == tuple(sorted(SCHEMAS + V1_ONLY))
    for name in SCHEMAS:
        last = 3 if name in V3 else 2
        assert versions(name) == tuple(range(1, last + 1))
        assert latest_version(name) == last
        assert load_schema(name).version == last
    for name in V1_ONLY:
        assert versions(name) == (1,)
        last = load_schema(name).raw["fields"][-1]
        assert last == {"name": "trace_id", "type": ["null", "string"], "default": None, "doc": last["doc"]}


def _walk_named(schema: Any, path: str, out: list[str]) -> None:
    """Collect paths of fields / named types that lack a non-empty doc."""
    if isinstance(schema, list):
        for branch in schema:
            _walk_named(branch, path, out)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in ("record", "enum", "fixed") and not str(schema.get("doc", "")).strip():
        out.append(f"{path} ({kind} {schema.get('name')})")
    if kind == "record":
        for field in schema["fields"]:
            fpath = f"{path}.{field['name']}"
            if not str(field.get("doc", "")).strip():
                out.append(fpath)
            _walk_named(field["type"], fpath, out)
    elif kind == "array":
        _walk_named(schema["items"], path + "[]", out)
    elif kind == "map":
        _walk_named(schema["values"], path + "{}", out)
    elif isinstance(kind, (dict, list)):
        _walk_named(kind, path, out)


@pytest.mark.parametrize("path", sorted(schemas_dir().glob("*.avsc")), ids=lambda p: p.name)
def test_every_field_and_named_type_has_a_doc(path) -> None:
    raw = json.loads(path.read_text())
    missing: list[str] = []
    _walk_named(raw, raw["name"], missing)
    assert missing == []
    assert raw["namespace"] == "emowatch.v1"
    fastavro.parse_schema(raw)  # a valid Avro schema


@pytest.mark.parametrize("name", SCHEMAS)
def test_v2_adds_exactly_one_optional_field(name: str) -> None:
    v1, v2 = load_schema(name, 1).raw, load_schema(name, 2).raw
    assert v2["fields"][:-1] == v1["fields"]
    added = v2["fields"][-1]
    assert added["name"] == "trace_id"
    assert added["type"] == ["null", "string"]
    assert "default" in added and added["default"] is None
    assert {k: v for k, v in v2.items() if k != "fields"} == {k: v for k, v in v1.items() if k != "fields"}


def test_frame_scores_v3_adds_the_voice_activity_fields() -> None:
    v2, v3 = load_schema("FrameScores", 2).raw, load_schema("FrameScores", 3).raw
    assert v3["fields"][:-3] == v2["fields"]
    added = {f["name"]: f for f in v3["fields"][-3:]}
    assert list(added) == ["speech", "energy_db", "vad"]
    floats = ["null", {"type": "array", "items": "float"}]
    assert [added[n]["type"] for n in added] == [floats, floats, ["null", "string"]]
    assert all("default" in f and f["default"] is None for f in added.values())
    assert {k: v for k, v in v3.items() if k != "fields"} == {k: v for k, v in v2.items() if k != "fields"}


def test_crc64_avro_matches_the_avro_spec_vector() -> None:
    # From the Avro reference implementations' tests: "int" -> 0x7275d51a3f395c8f,
    # single-object header C3 01 8F 5C 39 3F 1A D5 75 72.
    assert crc64_avro(b'"int"') == 8247732601305521295
    assert crc64_avro(b'"int"').to_bytes(8, "little") == bytes.fromhex("8f5c393f1ad57572")


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_fingerprint_matches_fastavro(name: str, version: int) -> None:
    info = load_schema(name, version)
    assert info.fingerprint.hex() == fastavro_fingerprint(info.canonical, "CRC-64-AVRO")
    assert info.canonical == fastavro.schema.to_parsing_canonical_form(info.raw)
    assert len(info.fingerprint) == 8
    assert info.full_name == f"emowatch.v1.{name}"


def test_fingerprint_table_holds_every_version_once() -> None:
    table = fingerprint_table()
    assert len(table) == 2 * len(SCHEMAS) + len(V3) + len(V1_ONLY)
    assert {(i.name, i.version) for i in table.values()} == set(ALL_VERSIONS)
    for fp, info in table.items():
        assert fp == info.fingerprint


def test_logical_types_are_stripped_but_wire_identical() -> None:
    info = load_schema("AudioChunk", 1)
    assert "logicalType" not in json.dumps(info.parsed)
    assert "timestamp-millis" in info.json_str  # the registered schema keeps it
    stripped = strip_logical_types(info.raw)
    assert fastavro.schema.to_parsing_canonical_form(stripped) == info.canonical
    record = example_record("AudioChunk")
    a, b = io.BytesIO(), io.BytesIO()
    fastavro.schemaless_writer(a, fastavro.parse_schema(info.raw), record)  # original schema, int millis
    fastavro.schemaless_writer(b, info.parsed, record)
    assert a.getvalue() == b.getvalue()
    back = fastavro.schemaless_reader(io.BytesIO(a.getvalue()), info.parsed)
    assert back["event_time"] == record["event_time"] and type(back["event_time"]) is int


def test_unknown_schema_and_version_raise() -> None:
    with pytest.raises(SchemaNotFoundError, match="unknown schema 'Nope'"):
        load_schema("Nope")
    with pytest.raises(SchemaNotFoundError, match="no version 9"):
        load_schema("Alert", 9)


def test_schema_info_is_cached() -> None:
    assert load_schema("Alert", 1) is load_schema("Alert", 1)
    assert catalog.fingerprint_table() is catalog.fingerprint_table()
