"""compile_reader and numpy_converter on a schema using every Avro type (beyond the shipped schemas)."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import numpy as np
from avro_strategies import avro_values
from fastread_cases import PROPS, as_lists, check_same_record, same, zigzag
from hypothesis import given

from emowatch.topics.catalog import strip_logical_types
from emowatch.topics.fastread import compile_reader, numpy_converter

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
