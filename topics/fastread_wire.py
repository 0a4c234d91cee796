"""What compiled Avro readers (:mod:`emowatch.topics.fastread`) and the numpy converter share.

The binary primitives the generated reader code calls (zig-zag varints, float arrays as
read-only numpy views, the errors for malformed input) and the lookups of a fastavro-parsed
schema's named types. See :mod:`emowatch.topics.fastread` for the decoding contract.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "EMPTY_ARRAYS", "FLOAT_DTYPES", "PRIMITIVES", "bad_branch", "bad_count", "bad_length", "float_block",
    "named_types", "read_float_array", "read_long", "resolve",
]

FLOAT_DTYPES: dict[str, np.dtype[Any]] = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}
"""numpy dtype of the arrays an ``array<float>`` / ``array<double>`` decodes to."""

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
EMPTY_ARRAYS = {dtype: np.frombuffer(b"", dtype) for dtype in FLOAT_DTYPES.values()}  # read-only, shareable


def read_long(d: bytes, p: int) -> tuple[int, int]:
    """Zig-zag varint at ``p`` (any length up to 10 bytes) -> (value, new position)."""
    b = d[p]
    n = b & 0x7F
    shift = 7
    p += 1
    while b & 0x80:
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")
        b = d[p]
        p += 1
        n |= (b & 0x7F) << shift
        shift += 7
    if n >> 64:
        raise ValueError("varint does not fit in 64 bits")
    return (n >> 1) ^ -(n & 1), p


def bad_length(n: int, left: int) -> ValueError:
    if n < 0:
        return ValueError(f"negative length {n}")
    return ValueError(f"length {n} runs past the end of the message ({left} bytes left)")


def bad_count(n: int, left: int) -> ValueError:
    return ValueError(f"block of {n} items cannot fit in the {left} bytes left")


def bad_branch(index: int, branches: int) -> ValueError:
    return ValueError(f"union branch index {index} out of range for a union of {branches}")


def float_block(d: bytes, p: int, n: int, size: int) -> tuple[int, int, int]:
    """Locate one block of ``n`` (possibly negative) items -> (count, data start, data end)."""
    if n < 0:  # negative count: a byte size follows (ignored, as fastavro and the Java reader do)
        n = -n
        _, p = read_long(d, p)
    end = p + n * size
    if end > len(d):
        raise bad_length(n * size, len(d) - p)
    return n, p, end


def read_float_array(d: bytes, p: int, dtype: np.dtype[Any]) -> tuple[np.ndarray[Any, Any], int]:
    """Read one ``array<float|double>`` at ``p`` as a read-only numpy array of ``dtype``."""
    b = d[p]
    if b < 128:
        p += 1
        n = (b >> 1) ^ -(b & 1)
    else:
        n, p = read_long(d, p)
    if not n:
        return EMPTY_ARRAYS[dtype], p
    size = dtype.itemsize
    n, start, p = float_block(d, p, n, size)
    b = d[p]
    if not b:  # one block, the usual case: a view of the message bytes
        return np.frombuffer(d, dtype, n, start), p + 1
    parts = [d[start:p]]
    n, p = read_long(d, p)
    while n:
        n, start, p = float_block(d, p, n, size)
        parts.append(d[start:p])
        n, p = read_long(d, p)
    return np.frombuffer(b"".join(parts), dtype), p


def resolve(schema: Any, named: dict[str, Any]) -> Any:
    """Follow named references (``named``: :func:`named_types`) and ``{"type": "long"}``-style wrappers."""
    while True:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return schema
            if schema not in named:
                raise ValueError(f"unknown Avro type {schema!r}")
            schema = named[schema]
        elif isinstance(schema, dict) and not isinstance(schema.get("type"), str):
            schema = schema["type"]  # {"type": [...]} or {"type": {...}}
        elif isinstance(schema, dict) and schema["type"] in PRIMITIVES | set(named):
            schema = schema["type"]
        else:
            return schema


def named_types(schema: Any) -> dict[str, Any]:
    """Named types of a fastavro-parsed schema (its ``__named_schemas``, or found by walking it)."""
    if isinstance(schema, dict) and isinstance(schema.get("__named_schemas"), dict):
        return dict(schema["__named_schemas"])
    found: dict[str, Any] = {}

    def walk(s: Any) -> None:
        if isinstance(s, list):
            for branch in s:
                walk(branch)
        elif isinstance(s, dict):
            kind = s.get("type")
            if kind in ("record", "enum", "fixed", "error") and "name" in s:
                found.setdefault(s["name"], s)
            for f in s.get("fields", ()):
                walk(f["type"])
            for key in ("items", "values"):
                if key in s:
                    walk(s[key])
            if isinstance(kind, (dict, list)):
                walk(kind)

    walk(schema)
    return found
