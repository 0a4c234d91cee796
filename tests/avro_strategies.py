"""Hypothesis strategies for valid values of the shipped Avro schemas (shared by the topics tests).

On the test path through ``[tool.pytest.ini_options] pythonpath``: ``from avro_strategies import ...``.
"""
from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from emowatch.topics.catalog import load_schema, schema_names, versions


def avro_values(avro_type: Any, named: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Valid values of a (raw or parsed) schema; recursion is cut off below depth 3."""
    if isinstance(avro_type, list):
        branches = avro_type[:1] if depth > 3 else avro_type
        return st.one_of(*[avro_values(t, named, depth + 1) for t in branches])
    if isinstance(avro_type, str):
        if avro_type in named:
            return avro_values(named[avro_type], named, depth + 1)
        return {
            "null": st.none(),
            "boolean": st.booleans(),
            "int": st.integers(-(2**31), 2**31 - 1),
            "long": st.integers(-(2**63), 2**63 - 1),
            "float": st.floats(width=32, allow_nan=False),
            "double": st.floats(allow_nan=False),
            "string": st.text(max_size=20),
            "bytes": st.binary(max_size=40),
        }[avro_type]
    kind = avro_type["type"]
    size = 0 if depth > 3 else 12
    if kind in ("enum", "fixed", "record"):
        named[avro_type["name"]] = named[avro_type["name"].rsplit(".", 1)[-1]] = avro_type
    if kind == "enum":
        return st.sampled_from(avro_type["symbols"])
    if kind == "fixed":
        return st.binary(min_size=avro_type["size"], max_size=avro_type["size"])
    if kind == "array":
        return st.lists(avro_values(avro_type["items"], named, depth + 1), max_size=size)
    if kind == "map":
        return st.dictionaries(st.text(max_size=8), avro_values(avro_type["values"], named, depth + 1), max_size=4)
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: avro_values(f["type"], named, depth + 1) for f in avro_type["fields"]})
    return avro_values(kind, named, depth)




def shipped_records() -> st.SearchStrategy[tuple[tuple[str, int], dict[str, Any]]]:
    """``((schema name, version), a valid record)`` for every shipped schema version."""
    every = [(n, v) for n in schema_names() for v in versions(n)]
    return st.sampled_from(every).flatmap(lambda nv: st.tuples(st.just(nv), avro_values(load_schema(*nv).raw, {})))


def mutate(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-4 random byte edits (flip a bit, set, cut the tail, insert, delete): for
    fuzzing readers with almost-valid messages. Call inside an ``@st.composite``."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert", "delete"]))
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del buf[i:]
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=8))
        else:
            del buf[i]
    return bytes(buf)
