"""AvroSerde: framings, evolution, errors, keys (no broker; mock:// Schema Registry)."""

from __future__ import annotations

import io
import json
import pickle
import uuid

import fastavro
import numpy as np
import pytest

from emowatch.topics.catalog import load_schema, versions
from emowatch.topics.examples import EXAMPLE_EVENT_TIME_MS, example_record
from emowatch.topics.serde import AvroSerde, SerdeError, decode_key, encode_key

SCHEMAS = ("Alert", "AudioChunk", "DeadLetter", "FrameScores", "RuleSet")
TOPIC = "test.emowatch.x.v1"


@pytest.fixture
def registry_url() -> str:
    """A fresh in-memory Schema Registry per test."""
    return f"mock://{uuid.uuid4().hex}"


SCHEMA_VERSIONS = [(n, v) for n in SCHEMAS for v in versions(n)]
EVOLUTION = [(n, w, r) for n in SCHEMAS for w in versions(n) for r in versions(n)]
# what each version adds, with a value (every added field is optional with a null default)
ADDED = {2: {"trace_id": "0af7651916cd43dd8448eb211c80319c"},
         3: {"speech": [0.0, 0.25, 1.0, 0.5, 0.75], "energy_db": [-100.0, -42.5, -6.0, -20.25, -30.0],
             "vad": "silero-vad 6.2.3 context 512 ms"}}


def expected(record: dict, reader_version: int, name: str = "FrameScores") -> dict:
    """What a reader of ``reader_version`` returns for ``record``: its fields, absent ones at their null default."""
    return {f: record.get(f) for f in load_schema(name, reader_version).field_names}


@pytest.mark.parametrize(("name", "version"), SCHEMA_VERSIONS)
def test_single_object_round_trip(name: str, version: int) -> None:
    serde = AvroSerde(name, version=version)
    record = example_record(name)
    data = serde.encode(record, topic=TOPIC)
    assert serde.framing == "single-object"
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == load_schema(name, version).fingerprint
    assert serde.decode(data, topic=TOPIC) == expected(record, version, name)


@pytest.mark.parametrize("name", SCHEMAS)
def test_registry_round_trip_uses_confluent_framing_and_topic_subject(name: str, registry_url: str) -> None:
    serde = AvroSerde(name, registry_url=registry_url)
    record = example_record(name, trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    data = serde.encode(record, topic=TOPIC)
    assert serde.framing == "registry"
    client = serde.registry_client
    registered = client.get_latest_version(f"{TOPIC}-value")
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == registered.schema_id
    assert "timestamp-millis" in registered.schema.schema_str  # registered with its logical types
    assert serde.decode(data, topic=TOPIC) == expected(record, serde.version, name)


@pytest.mark.parametrize(("name", "writer_version", "reader_version"), EVOLUTION)
@pytest.mark.parametrize("framing", ["single-object", "registry"])
def test_evolution_both_ways(
    name: str, writer_version: int, reader_version: int, framing: str, registry_url: str
) -> None:
    url = registry_url if framing == "registry" else None
    writer = AvroSerde(name, version=writer_version, registry_url=url)
    reader = AvroSerde(name, version=reader_version, registry_url=registry_url)
    record = example_record(name)
    for version in range(2, writer_version + 1):
        record.update(ADDED[version])
    out = reader.decode(writer.encode(record, topic=TOPIC), topic=TOPIC)
    assert out == expected(record, reader_version, name)
    assert list(out) == list(load_schema(name, reader_version).field_names)


def test_reader_accepts_both_framings_regardless_of_config(registry_url: str) -> None:
    record = example_record("Alert")
    plain = AvroSerde("Alert").encode(record, topic=TOPIC)
    framed = AvroSerde("Alert", registry_url=registry_url).encode(record, topic=TOPIC)
    with_registry = AvroSerde("Alert", registry_url=registry_url)
    assert with_registry.decode(plain, topic=TOPIC) == expected(record, 2, "Alert")
    assert with_registry.decode(framed, topic=TOPIC) == expected(record, 2, "Alert")
    with pytest.raises(SerdeError, match="registry URL .* is needed") as info:
        AvroSerde("Alert").decode(framed, topic=TOPIC, partition=2, offset=9)
    assert (info.value.topic, info.value.partition, info.value.offset) == (TOPIC, 2, 9)


def test_timestamps_are_int_millis() -> None:
    serde = AvroSerde("FrameScores")
    out = serde.decode(serde.encode(example_record("FrameScores"), topic=TOPIC), topic=TOPIC)
    assert type(out["event_time"]) is int and out["event_time"] == EXAMPLE_EVENT_TIME_MS
    with pytest.raises(SerdeError, match="'event_time' must be an int") as info:
        serde.encode(example_record("FrameScores", event_time=EXAMPLE_EVENT_TIME_MS + 0.5), topic=TOPIC)
    assert info.value.field == "event_time"


def test_numpy_values_are_accepted() -> None:
    serde = AvroSerde("FrameScores")
    logits = np.arange(45, dtype=np.float32) / 8
    record = example_record("FrameScores", logits=logits, n_frames=np.int64(5), embedding=None)
    out = serde.decode(serde.encode(record, topic=TOPIC), topic=TOPIC)
    assert out["logits"] == logits.tolist() and out["n_frames"] == 5


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"seq": "7"}, "seq", "'seq' must be an int"),
        ({"seq": True}, "seq", "'seq' must be an int"),
        ({"seq": 2**70}, "seq", "'seq' must be long"),
        ({"seq": None}, "seq", "'seq' is required"),
        ({"role": "BOSS"}, "role", r"'role' must be enum \[CUSTOMER, AGENT, MIXED\]"),
        ({"logits": [0.5, "x"]}, "logits", "'logits' must be array<float>"),
        ({"model": {"name": 1, "version": "v"}}, "model", "'model' must be record ModelInfo"),
        ({"colour": "red"}, "colour", "has no field 'colour'"),
        ({"attributes": {"a": 1}}, "attributes", "'attributes' must be map<string, string>"),
    ],
)
def test_encode_errors_name_the_field(overrides: dict, field: str, message: str) -> None:
    with pytest.raises(SerdeError, match=message) as info:
        AvroSerde("FrameScores").encode(example_record("FrameScores", **overrides), topic=TOPIC)
    assert info.value.field == field
    assert info.value.topic == TOPIC


def test_missing_required_field_and_non_mapping() -> None:
    record = example_record("Alert")
    del record["alert_id"]
    with pytest.raises(SerdeError, match="'alert_id' is required"):
        AvroSerde("Alert").encode(record, topic=TOPIC)
    with pytest.raises(SerdeError, match="must be a mapping"):
        AvroSerde("Alert").encode([1, 2], topic=TOPIC)  # type: ignore[arg-type]


def test_fields_with_defaults_may_be_omitted() -> None:
    record = example_record("AudioChunk")
    for optional in ("channels", "business_line", "end_of_call", "attributes", "encoding"):
        del record[optional]
    serde = AvroSerde("AudioChunk", version=1)
    out = serde.decode(serde.encode(record, topic=TOPIC), topic=TOPIC)
    assert (out["channels"], out["business_line"], out["end_of_call"], out["attributes"]) == (1, "default", False, {})
    assert out["encoding"] == "PCM_S16LE"


def _valid() -> bytes:
    return AvroSerde("FrameScores", version=1).encode(example_record("FrameScores"), topic=TOPIC)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty message"),
        (b"\xc3", "truncated single-object header"),
        (b"\xc3\x01\x01\x02", "truncated single-object header"),
        (b"\xc3\x01" + bytes(8) + b"\x02", "unknown schema fingerprint 0000000000000000"),
        (b'{"call_id": "x"}', "unknown framing: first bytes 7b22"),
        (b"\x01\x00\x00\x00\x01abc", "unknown framing"),
        (None, "tombstone"),
        ("text", "got a str"),
    ],
)
def test_decode_rejects_bad_input(data: object, message: str) -> None:
    with pytest.raises(SerdeError, match=message) as info:
        AvroSerde("FrameScores").decode(data, topic=TOPIC, partition=3, offset=41)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"topic={TOPIC} partition=3 offset=41: ")


def test_truncated_and_trailing_bodies() -> None:
    data = _valid()
    serde = AvroSerde("FrameScores")
    for cut in (11, len(data) // 2, len(data) - 1):
        with pytest.raises(SerdeError, match="malformed FrameScores body .*FrameScores v1"):
            serde.decode(data[:cut], topic=TOPIC)
    with pytest.raises(SerdeError, match="1 unexpected trailing bytes"):
        serde.decode(data + b"\x00", topic=TOPIC)


def test_other_record_type_is_rejected(registry_url: str) -> None:
    alert = AvroSerde("Alert").encode(example_record("Alert"), topic=TOPIC)
    with pytest.raises(SerdeError, match="holds Alert v2 data, this serde reads FrameScores"):
        AvroSerde("FrameScores").decode(alert, topic=TOPIC)
    framed = AvroSerde("Alert", registry_url=registry_url).encode(example_record("Alert"), topic=TOPIC)
    with pytest.raises(SerdeError, match="is emowatch.v1.Alert, this serde reads emowatch.v1.FrameScores"):
        AvroSerde("FrameScores", registry_url=registry_url).decode(framed, topic=TOPIC)


def test_unknown_registry_id_and_short_header(registry_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    serde = AvroSerde("Alert", registry_url=registry_url)
    with pytest.raises(SerdeError, match="schema id 4242 cannot be fetched from the registry at mock://"):
        serde.decode(b"\x00" + (4242).to_bytes(4, "big") + b"\x02", topic=TOPIC, offset=5)
    calls = []
    real_get = serde.registry_client.get_schema
    monkeypatch.setattr(serde.registry_client, "get_schema", lambda *a, **k: calls.append(a) or real_get(*a, **k))
    for _ in range(3):  # a 404 is remembered: the registry is asked once
        with pytest.raises(SerdeError, match="schema id 77 cannot be fetched"):
            serde.decode(b"\x00" + (77).to_bytes(4, "big") + b"\x02", topic=TOPIC)
    assert len(calls) == 1
    with pytest.raises(SerdeError, match="truncated Schema Registry header: 3 of 5"):
        serde.decode(b"\x00\x00\x00", topic=TOPIC)


def test_registry_schema_unknown_to_this_build_is_resolved(registry_url: str) -> None:
    """A newer producer registered a v3 (not shipped here): readers resolve it from the registry."""
    from confluent_kafka.schema_registry import Schema

    serde = AvroSerde("RuleSet", version=1, registry_url=registry_url)
    raw = load_schema("RuleSet", 2).raw
    v3 = dict(raw, fields=raw["fields"] + [{"name": "owner", "type": "string", "default": "", "doc": "Owner."}])
    schema_id = serde.registry_client.register_schema(f"{TOPIC}-value", Schema(json.dumps(v3), "AVRO"))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(v3), dict(example_record("RuleSet"), owner="ops"))
    data = b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()
    assert serde.decode(data, topic=TOPIC) == example_record("RuleSet")


def test_serde_error_format_and_pickle() -> None:
    err = SerdeError("bad", topic="t", partition=1, offset=2, field="f")
    assert isinstance(err, ValueError)
    assert str(err) == "topic=t partition=1 offset=2: bad"
    assert str(SerdeError("bad")) == "bad"
    back = pickle.loads(pickle.dumps(err))
    assert (back.reason, back.topic, back.partition, back.offset, back.field) == ("bad", "t", 1, 2, "f")
    assert str(back) == str(err)


def test_keys_are_plain_utf8() -> None:
    assert encode_key("call-ü1") == "call-ü1".encode()
    assert decode_key("call-ü1".encode()) == "call-ü1"
    assert AvroSerde.decode_key(AvroSerde.encode_key("c")) == "c"
    for bad in (None, b"", b"\xff\xfe"):
        with pytest.raises(SerdeError) as info:
            decode_key(bad, topic=TOPIC, partition=0, offset=1)
        assert info.value.offset == 1
    for bad_key in ("", None, 5):
        with pytest.raises(SerdeError):
            encode_key(bad_key)  # type: ignore[arg-type]


def test_unknown_schema_name_fails_at_construction() -> None:
    with pytest.raises(LookupError, match="unknown schema"):
        AvroSerde("Nope")


def test_registry_url_credentials_never_appear_in_errors() -> None:
    serde = AvroSerde("Alert", registry_url=f"mock://user:hunter2@{uuid.uuid4().hex}")
    with pytest.raises(SerdeError) as info:
        serde.decode(b"\x00\x00\x00\x00\x09\x02", topic=TOPIC)
    assert "hunter2" not in str(info.value) and "user:***@" in str(info.value)


def test_registry_clients_are_shared_per_url(registry_url: str) -> None:
    a = AvroSerde("Alert", registry_url=registry_url)
    b = AvroSerde("FrameScores", registry_url=registry_url)
    assert a.registry_client is b.registry_client
    assert AvroSerde("Alert", registry_url=f"mock://{uuid.uuid4().hex}").registry_client is not a.registry_client


def test_unregistered_schema_without_auto_register(registry_url: str) -> None:
    serde = AvroSerde("Alert", registry_url=registry_url, auto_register=False)
    with pytest.raises(SerdeError, match=r"cannot encode Alert \(schema registry\)"):
        serde.encode(example_record("Alert"), topic=TOPIC)
    AvroSerde("Alert", registry_url=registry_url).encode(example_record("Alert"), topic=TOPIC)  # registers it
    data = serde.encode(example_record("Alert"), topic=TOPIC)
    assert data[0] == 0
