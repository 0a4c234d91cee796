"""Writer -> reader schema resolution plans for the value serde.

Avro resolution (fastavro ``schemaless_reader(fo, writer, reader)``) is about
twice as slow as a plain read. Most evolution steps only add or remove
top-level fields with defaults, so when every field the two versions share
has the same binary layout in the same order, a :class:`ReadPlan` reads with
the writer schema alone, drops the writer-only fields and fills the
reader-only fields with their defaults (a projection). Anything else falls
back to full fastavro resolution. Both give the same dict.

With ``float_arrays="numpy"`` a plan reads ``same`` and ``projection`` data
with a reader compiled for the writer schema (:mod:`emowatch.topics.fastread`),
which returns float/double arrays as numpy arrays; ``resolution`` data is read
by fastavro and its float arrays converted afterwards.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import IO, Any

from fastavro import schemaless_reader
from fastavro.schema import to_parsing_canonical_form

from emowatch.topics.catalog import SchemaInfo
from emowatch.topics.fastread import Reader, compile_reader, numpy_converter

__all__ = ["FLOAT_ARRAYS", "ReadPlan", "plan_read"]

FLOAT_ARRAYS = ("list", "numpy")
"""Accepted ``float_arrays`` values: lists of floats (fastavro) or numpy arrays."""

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
    float_arrays: str = "list"
    """``list`` (fastavro's lists of floats) or ``numpy`` (float/double arrays as numpy arrays)."""
    compiled: Reader | None = field(default=None, compare=False, repr=False)
    """numpy mode, plain read or projection: the reader compiled for ``writer``."""
    convert: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)
    """numpy mode, resolution (or a schema the compiler rejects): turns fastavro's float lists
    into numpy arrays after the read (None: nothing to turn)."""
    numpy_add: tuple[tuple[str, Any], ...] = field(default=(), compare=False, repr=False)
    """numpy mode: ``add`` with float-array defaults as (empty, read-only) numpy arrays."""

    @property
    def mode(self) -> str:
        """``same`` (identical schema), ``projection`` or ``resolution``."""
        if self.reader is not None:
            return "resolution"
        return "projection" if (self.drop or self.add) else "same"

    def read(self, buf: IO[bytes]) -> Any:
        """Read one record body from ``buf`` (positioned after the framing header) with fastavro.

        Float arrays are lists here whatever ``float_arrays`` says; see :meth:`read_at`.
        """
        return self._project(schemaless_reader(buf, self.writer, self.reader))

    def read_at(self, data: bytes, pos: int) -> tuple[Any, int]:
        """Read one record body starting at ``data[pos]`` -> (record, position after it).

        Honours ``float_arrays``: in ``numpy`` mode ``data`` must be ``bytes``
        and float arrays are read-only numpy arrays.
        """
        if self.compiled is not None:
            record, end = self.compiled(data, pos)
            return self._project(record, self.numpy_add), end
        buf = io.BytesIO(data)
        buf.seek(pos)
        record = self._project(schemaless_reader(buf, self.writer, self.reader))
        if self.convert is not None:
            record = self.convert(record)
        return record, buf.tell()

    def _project(self, record: Any, add: tuple[tuple[str, Any], ...] | None = None) -> Any:
        """Drop writer-only fields and add reader-only ones (``add``, default :attr:`add`)."""
        if (self.drop or self.add) and isinstance(record, dict):
            for name in self.drop:
                record.pop(name, None)
            for name, default in self.add if add is None else add:
                record[name] = copy.copy(default) if isinstance(default, (list, dict)) else default
        return record


def plan_read(
    label: str,
    writer_raw: dict[str, Any],
    writer_parsed: dict[str, Any],
    reader: SchemaInfo,
    *,
    float_arrays: str = "list",
) -> ReadPlan:
    """Build the cheapest correct plan to read ``writer_raw`` data as ``reader``.

    ``float_arrays`` is ``"list"`` or ``"numpy"`` (see :class:`ReadPlan`);
    ``numpy`` compiles a reader for the writer schema (once per plan).
    """
    if float_arrays not in FLOAT_ARRAYS:
        raise ValueError(f"float_arrays must be one of {FLOAT_ARRAYS}, got {float_arrays!r}")
    if writer_raw is reader.raw or to_parsing_canonical_form(writer_raw) == reader.canonical:
        plan = ReadPlan(label=label, writer=writer_parsed)
    else:
        projection = _projection(writer_raw, reader.raw)
        if projection is None:
            plan = ReadPlan(label=label, writer=writer_parsed, reader=reader.parsed)
        else:
            plan = ReadPlan(label=label, writer=writer_parsed, drop=projection[0], add=projection[1])
    if float_arrays == "list":
        return plan
    if plan.reader is None:
        try:
            compiled = compile_reader(writer_parsed, numpy=True)
        except Exception:  # noqa: BLE001 - a schema the compiler cannot handle: fastavro reads it, arrays converted below
            compiled = None
        if compiled is not None:
            add = tuple((name, _numpy_default(reader.parsed, name, default)) for name, default in plan.add)
            return replace(plan, float_arrays=float_arrays, compiled=compiled, numpy_add=add)
    return replace(plan, float_arrays=float_arrays, convert=numpy_converter(plan.reader or reader.parsed))


def _numpy_default(reader_parsed: dict[str, Any], name: str, default: Any) -> Any:
    """A projected default as the numpy-mode reader returns it (an empty float array for ``[]``)."""
    field_type = next(f["type"] for f in reader_parsed["fields"] if f["name"] == name)
    holder = {
        "type": "record",
        "name": "_default",
        "fields": [{"name": "v", "type": field_type}],
        "__named_schemas": reader_parsed.get("__named_schemas", {}),
    }
    convert = numpy_converter(holder)
    return default if convert is None else convert({"v": copy.deepcopy(default)})["v"]


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
    except Exception:  # noqa: BLE001 - a named type defined in a dropped field: not a simple projection
        return None
    add = []
    for name, r_field in r_fields.items():
        if name in w_names:
            continue
        if "default" not in r_field or not _simple_default(r_field["type"], r_field["default"]):
            return None
        add.append((name, r_field["default"]))
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
