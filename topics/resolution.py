"""Writer -> reader schema resolution plans for the value serde.

Avro resolution (fastavro ``schemaless_reader(fo, writer, reader)``) is about
twice as slow as a plain read. Most evolution steps only add or remove
top-level fields with defaults, so when every field the two versions share
has the same binary layout in the same order, a :class:`ReadPlan` reads with
the writer schema alone, drops the writer-only fields and fills the
reader-only fields with their defaults (a projection). Anything else falls
back to full fastavro resolution. Both give the same dict.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import IO, Any

from fastavro import schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from emowatch.topics.catalog import SchemaInfo

__all__ = ["ReadPlan", "plan_read"]

_SIMPLE_DEFAULT_TYPES = {"null", "boolean", "int", "long", "float", "double", "string"}


@dataclass(frozen=True)
class ReadPlan:
    """How to read one writer schema into the reader's version."""

    label: str
    """Human name of the writer schema, used in error messages."""
    writer: dict[str, Any]
    """fastavro-parsed writer schema (logical types stripped)."""
    reader: dict[str, Any] | None = None
    """Parsed reader schema for full fastavro resolution, or None (plain read)."""
    drop: tuple[str, ...] = ()
    """Writer-only top-level fields removed after a plain read."""
    add: tuple[tuple[str, Any], ...] = ()
    """Reader-only top-level fields and their (JSON) defaults."""

    @property
    def mode(self) -> str:
        """``same`` (identical schema), ``projection`` or ``resolution``."""
        if self.reader is not None:
            return "resolution"
        return "projection" if (self.drop or self.add) else "same"

    def read(self, buf: IO[bytes]) -> Any:
        """Read one record body from ``buf`` (positioned after the framing header)."""
        record = schemaless_reader(buf, self.writer, self.reader)
        if (self.drop or self.add) and isinstance(record, dict):
            for name in self.drop:
                record.pop(name, None)
            for name, default in self.add:
                record[name] = copy.copy(default) if isinstance(default, (list, dict)) else default
        return record


def plan_read(label: str, writer_raw: dict[str, Any], writer_parsed: dict[str, Any], reader: SchemaInfo) -> ReadPlan:
    """Build the cheapest correct plan to read ``writer_raw`` data as ``reader``."""
    if writer_raw is reader.raw or to_parsing_canonical_form(writer_raw) == reader.canonical:
        return ReadPlan(label=label, writer=writer_parsed)
    projection = _projection(writer_raw, reader.raw)
    if projection is None:
        return ReadPlan(label=label, writer=writer_parsed, reader=reader.parsed)
    drop, add = projection
    return ReadPlan(label=label, writer=writer_parsed, drop=drop, add=add)


_Projection = tuple[tuple[str, ...], tuple[tuple[str, Any], ...]]


def _projection(writer: dict[str, Any], reader: dict[str, Any]) -> _Projection | None:
    """(drop, add) when a plain writer read plus a projection equals Avro resolution, else None."""
    if writer.get("type") != "record" or reader.get("type") != "record":
        return None
    if (writer.get("namespace"), writer.get("name")) != (reader.get("namespace"), reader.get("name")):
        return None
    w_names = [f["name"] for f in writer["fields"]]
    r_fields = {f["name"]: f for f in reader["fields"]}
    if any(f.get("aliases") for f in reader["fields"]):
        return None
    common = [n for n in w_names if n in r_fields]
    if common != [f["name"] for f in reader["fields"] if f["name"] in set(w_names)]:
        return None  # shared fields in a different order: let fastavro handle it

    def only(schema: dict[str, Any], keep: list[str]) -> str:
        return to_parsing_canonical_form(dict(schema, fields=[f for f in schema["fields"] if f["name"] in keep]))

    try:
        if only(writer, common) != only(reader, common):
            return None  # some shared field changed type, enum symbols, ...
    except Exception:  # a named type defined in a dropped field: not a simple projection
        return None
    add = []
    for name, field in r_fields.items():
        if name in w_names:
            continue
        if "default" not in field or not _simple_default(field["type"], field["default"]):
            return None
        add.append((name, field["default"]))
    return tuple(n for n in w_names if n not in r_fields), tuple(add)


def _simple_default(avro_type: Any, default: Any) -> bool:
    """True when the JSON default is already the value fastavro would produce."""
    if isinstance(avro_type, list):  # union: the default belongs to the first branch
        return bool(avro_type) and _simple_default(avro_type[0], default)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind in ("array", "map"):
            return default in ([], {})
        if kind == "enum":
            return isinstance(default, str)
        avro_type = kind
    if avro_type in ("float", "double"):
        return isinstance(default, float)
    return avro_type in _SIMPLE_DEFAULT_TYPES and (default is None or isinstance(default, (bool, int, str)))
