"""Schema-compiled Avro binary decoder that reads float arrays as numpy arrays.

:func:`compile_reader` turns a fastavro-parsed writer schema into a plain
Python function ``read(data, pos) -> (value, new_pos)`` generated for that
schema (one function per record type, primitives inlined), so decoding a
record costs no per-value type dispatch. ``array<float>`` / ``array<double>``
values come back as read-only ``<f4`` / ``<f8`` numpy arrays viewing ``data``
(``np.frombuffer``; multi-block arrays are joined first), which is what makes
a FrameScores message (450 logits) several times cheaper than fastavro's
list of Python floats. Every other value equals what fastavro's
``schemaless_reader`` returns: ints, strs, bytes, dicts, enum symbols as str.

``data`` must be ``bytes``. Malformed input raises an ordinary exception
(``IndexError``/``struct.error`` on truncation, ``UnicodeDecodeError``,
``KeyError`` for a bad enum index, ``ValueError`` for bad lengths, unions,
varints), never returns garbage silently; the caller checks that the
returned position is the end of the message. :func:`numpy_converter` (:mod:`.fastread_numpy`)
makes the same arrays out of an already decoded (fastavro) value, for the
cases read through full schema resolution. The binary primitives the
generated code calls live in :mod:`.fastread_wire`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from emowatch.topics.fastread_numpy import numpy_converter
from emowatch.topics.fastread_wire import (
    FLOAT_DTYPES,
    bad_branch,
    bad_count,
    bad_length,
    named_types,
    read_float_array,
    read_long,
    resolve,
)

__all__ = ["FLOAT_DTYPES", "Reader", "compile_reader", "numpy_converter"]

Reader = Callable[[bytes, int], tuple[Any, int]]
"""``read(data, pos) -> (value, new_pos)``."""

_MIN_SIZE = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}


class _Compiler:
    """Generates the Python source of a reader for one parsed schema."""

    def __init__(self, named: dict[str, Any], numpy: bool) -> None:
        self.named = named
        self.numpy = numpy
        self.consts: dict[str, Any] = {}
        self.functions: dict[str, str] = {}  # record full name -> generated function name
        self.sources: list[str] = []
        self.counter = 0

    def tmp(self, prefix: str = "t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        name = self.tmp("_c")
        self.consts[name] = value
        return name

    def resolve(self, schema: Any) -> Any:
        """Follow named references and ``{"type": "long"}``-style wrappers."""
        return resolve(schema, self.named)

    def min_size(self, schema: Any, seen: frozenset[str] = frozenset()) -> int:
        """Fewest bytes one value of ``schema`` can take (0 for null and empty records)."""
        schema = self.resolve(schema)
        if isinstance(schema, str):
            return _MIN_SIZE[schema]
        if isinstance(schema, list):
            return 1
        kind = schema["type"]
        if kind in ("record", "error"):
            name = schema["name"]
            if name in seen:
                return 0
            return sum(self.min_size(f["type"], seen | {name}) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return 1  # enum index, array/map block count

    def long(self, out: list[str], ind: str, target: str) -> None:
        out += [
            f"{ind}b = d[p]",
            f"{ind}if b < 128:",
            f"{ind}    p += 1",
            f"{ind}    {target} = (b >> 1) ^ -(b & 1)",
            f"{ind}else:",
            f"{ind}    {target}, p = _long(d, p)",
        ]

    def emit(self, schema: Any, out: list[str], ind: str, target: str) -> None:
        """Append statements to ``out`` that read one ``schema`` value into ``target``."""
        schema = self.resolve(schema)
        if isinstance(schema, list):
            return self.emit_union(schema, out, ind, target)
        if isinstance(schema, str):
            return self.emit_primitive(schema, out, ind, target)
        kind = schema["type"]
        if kind in ("record", "error"):
            out.append(f"{ind}{target}, p = {self.record_function(schema)}(d, p)")
        elif kind == "enum":
            index = self.tmp("i")
            self.long(out, ind, index)
            out.append(f"{ind}{target} = {self.const(dict(enumerate(schema['symbols'])))}[{index}]")
        elif kind == "fixed":
            out += [
                f"{ind}e = p + {int(schema['size'])}",
                f"{ind}if e > L:",
                f"{ind}    raise _bad_length({int(schema['size'])}, L - p)",
                f"{ind}{target} = d[p:e]",
                f"{ind}p = e",
            ]
        elif kind == "array":
            items = self.resolve(schema["items"])
            if self.numpy and isinstance(items, str) and items in FLOAT_DTYPES:
                out.append(f"{ind}{target}, p = _float_array(d, p, {self.const(FLOAT_DTYPES[items])})")
            else:
                self.emit_blocks(schema["items"], None, out, ind, target)
        elif kind == "map":
            self.emit_blocks(schema["values"], "string", out, ind, target)
        else:
            raise ValueError(f"unsupported Avro type {kind!r}")
        return None

    def emit_primitive(self, kind: str, out: list[str], ind: str, target: str) -> None:
        if kind == "null":
            out.append(f"{ind}{target} = None")
        elif kind == "boolean":
            out += [f"{ind}{target} = d[p] != 0", f"{ind}p += 1"]  # any non-zero byte is True, as in fastavro
        elif kind in ("int", "long"):
            self.long(out, ind, target)
        elif kind in ("float", "double"):
            fmt, size = ("<f", 4) if kind == "float" else ("<d", 8)
            out += [f"{ind}{target} = {self.const(struct.Struct(fmt).unpack_from)}(d, p)[0]", f"{ind}p += {size}"]
        else:  # string, bytes
            n = self.tmp("n")
            self.long(out, ind, n)
            out += [
                f"{ind}e = p + {n}",
                f"{ind}if {n} < 0 or e > L:",
                f"{ind}    raise _bad_length({n}, L - p)",
                f"{ind}{target} = d[p:e]" + (".decode()" if kind == "string" else ""),
                f"{ind}p = e",
            ]

    def emit_union(self, branches: list[Any], out: list[str], ind: str, target: str) -> None:
        index = self.tmp("i")
        self.long(out, ind, index)
        for i, branch in enumerate(branches):
            out.append(f"{ind}{'if' if i == 0 else 'elif'} {index} == {i}:")
            self.emit(branch, out, ind + "    ", target)
        out += [f"{ind}else:", f"{ind}    raise _bad_branch({index}, {len(branches)})"]

    def emit_blocks(self, item: Any, key: str | None, out: list[str], ind: str, target: str) -> None:
        """An array (``key`` None) or a map (``key`` "string") as a sequence of blocks."""
        n, k, x = self.tmp("n"), self.tmp("k"), self.tmp("x")
        out.append(f"{ind}{target} = {'{}' if key else '[]'}")
        self.long(out, ind, n)
        out += [f"{ind}while {n}:", f"{ind}    if {n} < 0:", f"{ind}        {n} = -{n}"]
        self.long(out, ind + "        ", "_")  # block byte size: ignored, as fastavro does
        size = self.min_size(item) + (1 if key else 0)
        if size:
            need = n if size == 1 else f"{n} * {size}"
            out += [f"{ind}    if {need} > L - p:", f"{ind}        raise _bad_count({n}, L - p)"]
        out.append(f"{ind}    for _ in range({n}):")
        if key:
            self.emit_primitive("string", out, ind + "        ", k)
            self.emit(item, out, ind + "        ", x)
            out.append(f"{ind}        {target}[{k}] = {x}")
        else:
            self.emit(item, out, ind + "        ", x)
            out.append(f"{ind}        {target}.append({x})")
        self.long(out, ind + "    ", n)

    def record_function(self, schema: dict[str, Any]) -> str:
        """Name of the generated function reading ``schema`` (generated on first use)."""
        name = schema["name"]
        if name in self.functions:
            return self.functions[name]
        func = f"_r{len(self.functions)}"
        self.functions[name] = func
        body: list[str] = []
        values = []
        for field in schema["fields"]:
            var = self.tmp("v")
            self.emit(field["type"], body, "    ", var)
            values.append(f"{field['name']!r}: {var}")
        self.sources.append(
            "\n".join(
                [f"def {func}(d, p):", "    L = len(d)", *body, f"    return {{{', '.join(values)}}}, p", ""]
            )
        )
        return func

    def build(self, schema: Any) -> Reader:
        resolved = self.resolve(schema)
        if isinstance(resolved, dict) and resolved["type"] in ("record", "error"):
            entry = self.record_function(resolved)
        else:
            body: list[str] = []
            self.emit(resolved, body, "    ", "v")
            entry = "_read"
            self.sources.append("\n".join(["def _read(d, p):", "    L = len(d)", *body, "    return v, p", ""]))
        namespace: dict[str, Any] = {
            # the names the generated source calls
            "_long": read_long,
            "_float_array": read_float_array,
            "_bad_length": bad_length,
            "_bad_count": bad_count,
            "_bad_branch": bad_branch,
            **self.consts,
        }
        source = "\n".join(self.sources)
        label = resolved.get("name", resolved["type"]) if isinstance(resolved, dict) else resolved
        exec(compile(source, f"<avro reader {label}>", "exec"), namespace)
        reader: Reader = namespace[entry]
        reader.__doc__ = f"Compiled Avro reader (generated source in ``{entry}.source``)."
        reader.source = source  # type: ignore[attr-defined]
        return reader


def compile_reader(schema: Any, *, numpy: bool = True) -> Reader:
    """Compile a reader for a fastavro-parsed schema (logical types stripped).

    The reader takes ``(data: bytes, pos: int)`` and returns ``(value,
    position after it)``. With ``numpy`` (the default) float/double arrays
    are read-only numpy arrays; without it they are lists of floats, exactly
    as fastavro returns them.
    """
    return _Compiler(named_types(schema), numpy).build(schema)
