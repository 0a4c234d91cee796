"""Compiled reader (float_arrays="numpy"): same records as fastavro, numpy float arrays, multi-block arrays,
schema evolution. Malformed input: test_fastread_malformed.py; other schemas: test_fastread_compiler.py."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any

import fastavro
import numpy as np
import pytest
from avro_strategies import shipped_records
from fastread_cases import (
    ALL,
    FS,
    LISTS,
    NUMPY,
    PROPS,
    TOPIC,
    blocks,
    check_same_record,
    f32,
    realistic_scores,
    same,
    scores_message,
    utf8,
    zigzag,
)
from hypothesis import given

from emowatch.topics.catalog import load_schema, strip_logical_types, versions
from emowatch.topics.examples import example_record
from emowatch.topics.resolution import plan_read
from emowatch.topics.serde import AvroSerde, SerdeError

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
    assert set(out) == set(load_schema("FrameScores").field_names)  # (in the writer's order, as in list mode)
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
