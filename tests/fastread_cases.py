"""Shared cases of the compiled-reader tests (tests/topics/test_fastread*.py): the serdes of every
shipped schema in list and numpy mode, record comparison, and hand-written Avro wire bytes."""

from __future__ import annotations

import io
import math
import os
from typing import Any

import fastavro
import numpy as np
from hypothesis import HealthCheck, settings

from emowatch.topics.catalog import load_schema, schema_names, strip_logical_types, versions
from emowatch.topics.examples import example_record
from emowatch.topics.serde import AvroSerde, SerdeError

TOPIC = "fastread.emowatch.v1"
SCALE = 20 if os.environ.get("TEST_FULL") == "1" else 1
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


# ---------------------------------------------------------------- wire bytes


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


# ---------------------------------------------------------------- list mode vs numpy mode on any bytes


def outcome(serde: AvroSerde, data: bytes) -> dict[str, Any] | SerdeError:
    try:
        return serde.decode(data, topic=TOPIC, partition=4, offset=44)
    except SerdeError as err:  # anything else fails the test
        assert (err.topic, err.partition, err.offset) == (TOPIC, 4, 44)
        return err


def check_agree(name: str, version: int, data: bytes) -> None:
    """List mode errs => numpy mode errs; numpy mode succeeds => list mode does, with the same record."""
    listed = outcome(LISTS[(name, version)], data)
    arrays = outcome(NUMPY[(name, version)], data)
    if isinstance(listed, SerdeError):
        assert isinstance(arrays, SerdeError)
        if "malformed" not in listed.reason + arrays.reason:  # framing and trailing-bytes errors read the same
            assert str(arrays) == str(listed)
    elif not isinstance(arrays, SerdeError):
        check_same_record(arrays, listed)
