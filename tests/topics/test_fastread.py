"""Compiled reader (float_arrays="numpy"): same records as fastavro, numpy float arrays, same errors."""

from __future__ import annotations

import io
import json
import math
import os
import uuid
from typing import Any

import fastavro
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avro_strategies import avro_values, mutate, shipped_records
from emowatch.topics.catalog import load_schema, schema_names, strip_logical_types, versions
from emowatch.topics.examples import example_record
from emowatch.topics.fastread import compile_reader, numpy_converter
from emowatch.topics.resolution import plan_read
from emowatch.topics.serde import AvroSerde, SerdeError

TOPIC = "fastread.emowatch.v1"
SCALE = 20 if os.environ.get("EMOWATCH_FULL") == "1" else 1
PROPS = settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALL = [(n, v) for n in schema_names() for v in versions(n)]
LISTS = {nv: AvroSerde(nv[0], version=nv[1]) for nv in ALL}
NUMPY = {nv: AvroSerde(nv[0], version=nv[1], float_arrays="numpy") for nv in ALL}
FS = load_schema("FrameScores", 2)


def as_lists(value: Any) -> Any:
    """``value`` with every numpy array turned into a list (what list mode returns)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: as_lists(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_lists(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    """Deep equality with matching types where NaN equals NaN (mutated floats may be NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def float_arrays_of(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in float_arrays_of(v)]
    if isinstance(value, list):
        return [a for v in value for a in float_arrays_of(v)]
    return []


def check_same_record(numpy_out: dict[str, Any], list_out: dict[str, Any]) -> None:
    assert same(as_lists(numpy_out), list_out)
    for arr in float_arrays_of(numpy_out):
        assert arr.dtype in (np.dtype("<f4"), np.dtype("<f8")) and arr.ndim == 1
        assert not arr.flags.writeable


def realistic_scores(seed: int = 3, n_frames: int = 50) -> dict[str, Any]:
    """A FrameScores record as the scorer makes them: 50 frames x 9 float32 logits."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 2.0, (n_frames, 9)).astype(np.float32)
    return example_record(
        "FrameScores",
        n_frames=n_frames,
        logits=logits.ravel().tolist(),
        chunk_probs=rng.dirichlet(np.ones(9)).tolist(),
        embedding=rng.normal(size=16).astype(np.float32).tolist(),
        attributes={"agent_id": "agent-7", "tier": "gold"},
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    )


# ---------------------------------------------------------------- valid records


RECORDS = shipped_records()


@PROPS
@given(RECORDS)
def test_every_schema_decodes_the_same_in_both_modes(item: tuple[tuple[str, int], dict[str, Any]]) -> None:
    (name, version), record = item
    data = LISTS[(name, version)].encode(record, topic=TOPIC)
    for reader_version in versions(name):  # same schema, and projection to the other version
        out = NUMPY[(name, reader_version)].decode(data, topic=TOPIC)
        check_same_record(out, LISTS[(name, reader_version)].decode(data, topic=TOPIC))
        assert list(out) == list(load_schema(name, reader_version).field_names)


@pytest.mark.parametrize(("name", "version"), ALL)
def test_examples_decode_the_same_in_both_modes(name: str, version: int) -> None:
    record = example_record(name)
    data = LISTS[(name, version)].encode(record, topic=TOPIC)
    out = NUMPY[(name, version)].decode(data, topic=TOPIC)
    check_same_record(out, LISTS[(name, version)].decode(data, topic=TOPIC))
    if name == "FrameScores":
        assert out["logits"].dtype == np.float32 and out["logits"].shape == (45,)
        assert np.array_equal(out["logits"], np.asarray(record["logits"], np.float32))
        assert isinstance(out["embedding"], np.ndarray)


def test_realistic_frame_scores_in_both_framings() -> None:
    record = realistic_scores()
    url = f"mock://{uuid.uuid4().hex}"
    for writer in (AvroSerde("FrameScores"), AvroSerde("FrameScores", registry_url=url)):
        data = writer.encode(record, topic=TOPIC)
        out = AvroSerde("FrameScores", registry_url=url, float_arrays="numpy").decode(data, topic=TOPIC)
        check_same_record(out, AvroSerde("FrameScores", registry_url=url).decode(data, topic=TOPIC))
        assert out["logits"].reshape(50, 9).dtype == np.float32
        assert out["chunk_probs"].tolist() == np.asarray(record["chunk_probs"], np.float32).tolist()


def test_empty_and_null_float_arrays() -> None:
    record = example_record("FrameScores", n_frames=0, logits=[], chunk_probs=[], embedding=None)
    out = NUMPY[("FrameScores", 2)].decode(LISTS[("FrameScores", 2)].encode(record, topic=TOPIC), topic=TOPIC)
    assert out["logits"].shape == (0,) and out["logits"].dtype == np.float32 and out["embedding"] is None


def test_nan_and_infinity_keep_their_bits() -> None:
    logits = np.array([np.nan, np.inf, -np.inf, -0.0, 1e-45], np.float32)
    record = example_record("FrameScores", n_frames=1, logits=logits.tolist())
    data = LISTS[("FrameScores", 2)].encode(record, topic=TOPIC)
    out = NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)["logits"]
    assert out.tobytes() == logits.tobytes()
    assert same(out.tolist(), LISTS[("FrameScores", 2)].decode(data, topic=TOPIC)["logits"])


def test_arrays_never_view_a_mutable_buffer() -> None:
    data = bytearray(LISTS[("FrameScores", 2)].encode(example_record("FrameScores"), topic=TOPIC))
    for given_data in (data, memoryview(data)):
        out = NUMPY[("FrameScores", 2)].decode(given_data, topic=TOPIC)  # type: ignore[arg-type]
        before = out["logits"].copy()
        data[-200:] = bytes(200)
        assert np.array_equal(out["logits"], before)
        data[:] = LISTS[("FrameScores", 2)].encode(example_record("FrameScores"), topic=TOPIC)


def test_float_arrays_option_is_checked() -> None:
    with pytest.raises(ValueError, match="float_arrays"):
        AvroSerde("FrameScores", float_arrays="tuple")
    with pytest.raises(ValueError, match="float_arrays"):
        plan_read("x", FS.raw, FS.parsed, FS, float_arrays="arrays")
    assert AvroSerde("FrameScores").float_arrays == "list"
    assert "float_arrays='numpy'" in repr(NUMPY[("FrameScores", 2)])


# ---------------------------------------------------------------- hand-written blocks


def zigzag(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def blocks(items: list[bytes], sizes: list[int], negative: bool = False, end: bytes = b"\x00") -> bytes:
    """``items`` (already encoded) as blocks of ``sizes`` items; negative counts carry byte sizes."""
    assert sum(sizes) == len(items)
    out, i = b"", 0
    for k in sizes:
        chunk = b"".join(items[i : i + k])
        out += zigzag(-k) + zigzag(len(chunk)) + chunk if negative else zigzag(k) + chunk
        i += k
    return out + end


def scores_message(record: dict[str, Any], replace: dict[str, bytes]) -> bytes:
    """A single-object FrameScores v2 message whose ``replace`` fields are the given raw bytes."""
    body = b""
    for field in FS.raw["fields"]:
        name = field["name"]
        if name in replace:
            body += replace[name]
            continue
        sub = fastavro.parse_schema(strip_logical_types(dict(FS.raw, fields=[field])))
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, sub, {name: record[name]})
        body += buf.getvalue()
    return b"\xc3\x01" + FS.fingerprint + body


def f32(values: list[float]) -> list[bytes]:
    return [np.float32(v).tobytes() for v in values]


def utf8(values: list[str]) -> list[bytes]:
    return [zigzag(len(v.encode())) + v.encode() for v in values]


@pytest.mark.parametrize(
    "layout",
    [
        {"sizes": [450]},
        {"sizes": [200, 250]},
        {"sizes": [1] * 9 + [441]},
        {"sizes": [450], "negative": True},
        {"sizes": [100, 300, 50], "negative": True},
        {"sizes": [450], "end": b"\x80\x00"},  # an over-long zero still ends the array
        {"sizes": [150, 300], "end": b"\x80\x80\x00"},
    ],
)
def test_multi_block_arrays(layout: dict[str, Any]) -> None:
    record = realistic_scores()
    logits, labels = record["logits"], record["labels"]
    probs = np.asarray(record["chunk_probs"], np.float32).tolist()
    data = scores_message(
        record,
        {
            "logits": blocks(f32(logits), **layout),
            "chunk_probs": blocks(f32(probs), [4, 5], negative=layout.get("negative", False)),
            "labels": blocks(utf8(labels), [2, 7], negative=True),
            "attributes": blocks([b"".join(utf8([k, v])) for k, v in record["attributes"].items()], [1, 1], True),
            "embedding": b"\x02" + blocks(f32(record["embedding"]), [8, 8]),
        },
    )
    list_out = LISTS[("FrameScores", 2)].decode(data, topic=TOPIC)
    assert list_out["logits"] == logits and list_out["labels"] == labels  # the bytes are valid Avro
    out = NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)
    check_same_record(out, list_out)
    assert out["logits"].shape == (450,) and out["chunk_probs"].dtype == np.float32


def test_block_running_past_the_end_is_an_error() -> None:
    record = realistic_scores()
    data = scores_message(record, {"logits": zigzag(10**9) + b"".join(f32(record["logits"])) + b"\x00"})
    for serde in (LISTS[("FrameScores", 2)], NUMPY[("FrameScores", 2)]):
        with pytest.raises(SerdeError, match="malformed FrameScores body"):
            serde.decode(data, topic=TOPIC)


# ---------------------------------------------------------------- evolution


def test_v1_data_read_by_v2_in_numpy_mode_is_a_projection() -> None:
    record = realistic_scores()
    del record["trace_id"]
    data = LISTS[("FrameScores", 1)].encode(record, topic=TOPIC)
    reader = AvroSerde("FrameScores", version=2, float_arrays="numpy")
    out = reader.decode(data, topic=TOPIC)
    (plan,) = reader._by_fingerprint.values()
    assert plan.mode == "projection" and plan.compiled is not None
    assert out["trace_id"] is None and list(out) == list(FS.field_names)
    check_same_record(out, LISTS[("FrameScores", 2)].decode(data, topic=TOPIC))


def test_projection_adds_float_array_defaults_as_arrays() -> None:
    extra = {"name": "extra", "type": {"type": "array", "items": "double"}, "default": []}
    reader = _info_like(dict(FS.raw, fields=[*FS.raw["fields"], extra]))
    plan = plan_read("FrameScores v2", FS.raw, FS.parsed, reader, float_arrays="numpy")
    assert plan.mode == "projection" and plan.add == (("extra", []),)
    data = LISTS[("FrameScores", 2)].encode(example_record("FrameScores"), topic=TOPIC)
    out, end = plan.read_at(data, 10)
    assert end == len(data)
    assert isinstance(out["extra"], np.ndarray) and out["extra"].dtype == np.float64 and out["extra"].size == 0
    assert isinstance(out["logits"], np.ndarray)
    assert plan.read(io.BytesIO(data[10:]))["extra"] == []  # the fastavro read keeps list defaults


def _info_like(raw: dict[str, Any]) -> Any:
    from types import SimpleNamespace

    return SimpleNamespace(
        raw=raw,
        parsed=fastavro.parse_schema(strip_logical_types(raw)),
        canonical=fastavro.schema.to_parsing_canonical_form(raw),
    )


def test_resolution_mode_converts_fastavro_lists() -> None:
    """A producer's schema with the fields in another order needs full resolution."""
    from confluent_kafka.schema_registry import Schema

    url = f"mock://{uuid.uuid4().hex}"
    reordered = dict(FS.raw, fields=list(reversed(FS.raw["fields"])))
    numpy_reader = AvroSerde("FrameScores", registry_url=url, float_arrays="numpy")
    schema_id = numpy_reader.registry_client.register_schema(f"{TOPIC}-value", Schema(json.dumps(reordered), "AVRO"))
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(strip_logical_types(reordered)), realistic_scores())
    data = b"\x00" + schema_id.to_bytes(4, "big") + body.getvalue()
    out = numpy_reader.decode(data, topic=TOPIC)
    (plan,) = numpy_reader._by_schema_id.values()
    assert plan.mode == "resolution" and plan.compiled is None
    assert set(out) == set(FS.field_names)  # (in the writer's order, as in list mode)
    check_same_record(out, AvroSerde("FrameScores", registry_url=url).decode(data, topic=TOPIC))
    assert isinstance(out["logits"], np.ndarray) and isinstance(out["embedding"], np.ndarray)
    with pytest.raises(SerdeError, match="1 unexpected trailing bytes"):
        numpy_reader.decode(data + b"\x00", topic=TOPIC)


def test_schema_the_compiler_rejects_falls_back_to_fastavro(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("unsupported Avro type")

    monkeypatch.setattr("emowatch.topics.resolution.compile_reader", refuse)
    extra = {"name": "extra", "type": {"type": "array", "items": "float"}, "default": []}
    reader = _info_like(dict(FS.raw, fields=[*FS.raw["fields"], extra]))
    plan = plan_read("FrameScores v2", FS.raw, FS.parsed, reader, float_arrays="numpy")
    assert plan.mode == "projection" and plan.compiled is None and plan.convert is not None
    data = LISTS[("FrameScores", 2)].encode(realistic_scores(), topic=TOPIC)
    out, end = plan.read_at(data, 10)
    assert end == len(data) and out["extra"].dtype == np.float32 and out["extra"].size == 0
    expected = dict(LISTS[("FrameScores", 2)].decode(data, topic=TOPIC), extra=[])
    check_same_record(out, expected)


# ---------------------------------------------------------------- malformed input


def _outcome(serde: AvroSerde, data: bytes) -> dict[str, Any] | SerdeError:
    try:
        return serde.decode(data, topic=TOPIC, partition=4, offset=44)
    except SerdeError as err:  # anything else fails the test
        assert (err.topic, err.partition, err.offset) == (TOPIC, 4, 44)
        return err


def check_agree(name: str, version: int, data: bytes) -> None:
    """List mode errs => numpy mode errs; numpy mode succeeds => list mode does, with the same record."""
    listed = _outcome(LISTS[(name, version)], data)
    arrays = _outcome(NUMPY[(name, version)], data)
    if isinstance(listed, SerdeError):
        assert isinstance(arrays, SerdeError)
        if "malformed" not in listed.reason + arrays.reason:  # framing and trailing-bytes errors read the same
            assert str(arrays) == str(listed)
    elif not isinstance(arrays, SerdeError):
        check_same_record(arrays, listed)


def test_every_prefix_of_a_frame_scores_message_is_an_error() -> None:
    data = LISTS[("FrameScores", 2)].encode(realistic_scores(), topic=TOPIC)
    for cut in range(len(data)):
        err = _outcome(NUMPY[("FrameScores", 2)], data[:cut])
        assert isinstance(err, SerdeError), cut
        assert isinstance(_outcome(LISTS[("FrameScores", 2)], data[:cut]), SerdeError)
        if cut >= 10:
            assert "malformed FrameScores body (written with FrameScores v2)" in err.reason


def test_flipped_bytes_agree_with_list_mode() -> None:
    data = LISTS[("FrameScores", 2)].encode(example_record("FrameScores", trace_id="t"), topic=TOPIC)
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(data)
            flipped[i] ^= mask
            check_agree("FrameScores", 2, bytes(flipped))


@pytest.mark.parametrize("tail", [b"\x00", b"abc"])
def test_trailing_bytes(tail: bytes) -> None:
    data = LISTS[("FrameScores", 1)].encode(example_record("FrameScores"), topic=TOPIC) + tail
    with pytest.raises(SerdeError, match=f"{len(tail)} unexpected trailing bytes .*FrameScores v1"):
        NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)
    check_agree("FrameScores", 2, data)


@pytest.mark.parametrize(
    ("field", "raw", "error"),
    [
        ("role", zigzag(3), "KeyError"),  # enum index past the symbols
        ("role", zigzag(-1), "KeyError"),  # negative enum index (fastavro reads the last symbol)
        ("call_id", zigzag(-2) + b"ab", "negative length"),
        ("call_id", zigzag(2) + b"\xff\xfe", "UnicodeDecodeError"),
        ("embedding", zigzag(2) + b"\x00", "union branch index 2"),
        ("embedding", zigzag(-1) + b"\x00", "union branch index -1"),
        ("seq", b"\x80" * 10 + b"\x01", "varint longer than 10 bytes"),
        ("seq", b"\xff" * 9 + b"\x7f", "does not fit in 64 bits"),
        ("labels", zigzag(10**6) + b"\x00", "cannot fit"),
    ],
)
def test_bad_values_are_serde_errors(field: str, raw: bytes, error: str) -> None:
    data = scores_message(realistic_scores(), {field: raw})
    with pytest.raises(SerdeError, match=f"malformed FrameScores body .*{error}"):
        NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)
    check_agree("FrameScores", 2, data)


VALID = [(nv, LISTS[nv].encode(example_record(nv[0]), topic=TOPIC)) for nv in ALL]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[tuple[str, int], bytes]:
    nv, data = draw(st.sampled_from(VALID))
    return nv, mutate(draw, data)


@PROPS
@given(mutated())
def test_mutated_messages_agree_with_list_mode(item: tuple[tuple[str, int], bytes]) -> None:
    (name, _), data = item
    for version in versions(name):
        check_agree(name, version, data)


@PROPS
@given(st.sampled_from([(nv, m[:10]) for nv, m in VALID]), st.binary(max_size=200))
def test_valid_header_with_random_body_agrees(item: tuple[tuple[str, int], bytes], body: bytes) -> None:
    (name, version), header = item
    check_agree(name, version, header + body)


# ---------------------------------------------------------------- compile_reader on other schemas

OTHER = {
    "type": "record",
    "name": "Everything",
    "namespace": "test",
    "fields": [
        {"name": "d", "type": {"type": "array", "items": "double"}},
        {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "float"}}},
        {"name": "by_name", "type": {"type": "map", "values": {"type": "array", "items": "double"}}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
        {"name": "again", "type": ["null", "Digest", "string", "long", "boolean", "double", "bytes"]},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "x", "type": "float"},
        {
            "name": "chain",
            "type": {
                "type": "record",
                "name": "Node",
                "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
            },
        },
        {"name": "nothing", "type": "null"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}
OTHER_PARSED = fastavro.parse_schema(strip_logical_types(OTHER))
OTHER_READER = compile_reader(OTHER_PARSED)
OTHER_LIST_READER = compile_reader(OTHER_PARSED, numpy=False)
OTHER_CONVERT = numpy_converter(OTHER_PARSED)


@PROPS
@given(avro_values(OTHER, {}))
def test_compiled_reader_matches_fastavro_on_every_type(record: dict[str, Any]) -> None:
    buf = io.BytesIO(b"xy")
    buf.seek(2)
    fastavro.schemaless_writer(buf, OTHER_PARSED, record)
    data = buf.getvalue()
    expected = fastavro.schemaless_reader(io.BytesIO(data[2:]), OTHER_PARSED, None)
    assert OTHER_LIST_READER(data, 2) == (expected, len(data))
    out, end = OTHER_READER(data, 2)
    assert end == len(data)
    check_same_record(out, expected)
    assert all(isinstance(row, np.ndarray) for row in out["grid"])
    assert OTHER_CONVERT is not None
    converted = OTHER_CONVERT(fastavro.schemaless_reader(io.BytesIO(data[2:]), OTHER_PARSED, None))
    check_same_record(converted, expected)
    assert same(as_lists(converted), as_lists(out))


def test_compiled_reader_exposes_its_source_and_reads_bare_types() -> None:
    assert "def " in OTHER_READER.source  # type: ignore[attr-defined]
    read_long = compile_reader("long")
    for n in (0, -1, 63, -64, 64, 2**31, -(2**63), 2**63 - 1):
        assert read_long(zigzag(n), 0) == (n, len(zigzag(n)))
    doubles = b"\x04" + np.array([1.5, -2.0]).tobytes() + b"\x00"
    arr, end = compile_reader({"type": "array", "items": "double"})(doubles, 0)
    assert arr.dtype == np.float64 and arr.tolist() == [1.5, -2.0] and end == 18
    assert numpy_converter({"type": "map", "values": "string"}) is None
