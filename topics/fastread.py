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
returned position is the end of the message. :func:`numpy_converter` makes
the same arrays out of an already decoded (fastavro) value, for the cases
read through full schema resolution.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["FLOAT_DTYPES", "Reader", "compile_reader", "numpy_converter"]

Reader = Callable[[bytes, int], tuple[Any, int]]
"""``read(data, pos) -> (value, new_pos)``."""

FLOAT_DTYPES: dict[str, np.dtype[Any]] = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}
"""numpy dtype of the arrays an ``array<float>`` / ``array<double>`` decodes to."""

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_MIN_SIZE = {"null": 0, "boolean": 1, "int": 1, "long": 1, "float": 4, "double": 8, "bytes": 1, "string": 1}
_EMPTY = {dtype: np.frombuffer(b"", dtype) for dtype in FLOAT_DTYPES.values()}  # read-only, shareable


def _long(d: bytes, p: int) -> tuple[int, int]:
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


def _bad_length(n: int, left: int) -> ValueError:
    if n < 0:
        return ValueError(f"negative length {n}")
    return ValueError(f"length {n} runs past the end of the message ({left} bytes left)")


def _bad_count(n: int, left: int) -> ValueError:
    return ValueError(f"block of {n} items cannot fit in the {left} bytes left")


def _bad_branch(index: int, branches: int) -> ValueError:
    return ValueError(f"union branch index {index} out of range for a union of {branches}")


def _float_block(d: bytes, p: int, n: int, size: int) -> tuple[int, int, int]:
    """Locate one block of ``n`` (possibly negative) items -> (count, data start, data end)."""
    if n < 0:  # negative count: a byte size follows (ignored, as fastavro and the Java reader do)
        n = -n
        _, p = _long(d, p)
    end = p + n * size
    if end > len(d):
        raise _bad_length(n * size, len(d) - p)
    return n, p, end


def _float_array(d: bytes, p: int, dtype: np.dtype[Any]) -> tuple[np.ndarray[Any, Any], int]:
    """Read one ``array<float|double>`` at ``p`` as a read-only numpy array of ``dtype``."""
    b = d[p]
    if b < 128:
        p += 1
        n = (b >> 1) ^ -(b & 1)
    else:
        n, p = _long(d, p)
    if not n:
        return _EMPTY[dtype], p
    size = dtype.itemsize
    n, start, p = _float_block(d, p, n, size)
    b = d[p]
    if not b:  # one block, the usual case: a view of the message bytes
        return np.frombuffer(d, dtype, n, start), p + 1
    parts = [d[start:p]]
    n, p = _long(d, p)
    while n:
        n, start, p = _float_block(d, p, n, size)
        parts.append(d[start:p])
        n, p = _long(d, p)
    return np.frombuffer(b"".join(parts), dtype), p


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
        while True:
            if isinstance(schema, str):
                if schema in _PRIMITIVES:
                    return schema
                if schema not in self.named:
                    raise ValueError(f"unknown Avro type {schema!r}")
                schema = self.named[schema]
            elif isinstance(schema, dict) and not isinstance(schema.get("type"), str):
                schema = schema["type"]  # {"type": [...]} or {"type": {...}}
            elif isinstance(schema, dict) and schema["type"] in _PRIMITIVES | set(self.named):
                schema = schema["type"]
            else:
                return schema

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
            "_long": _long,
            "_float_array": _float_array,
            "_bad_length": _bad_length,
            "_bad_count": _bad_count,
            "_bad_branch": _bad_branch,
            **self.consts,
        }
        source = "\n".join(self.sources)
        label = resolved.get("name", resolved["type"]) if isinstance(resolved, dict) else resolved
        exec(compile(source, f"<avro reader {label}>", "exec"), namespace)
        reader: Reader = namespace[entry]
        reader.__doc__ = f"Compiled Avro reader (generated source in ``{entry}.source``)."
        reader.source = source  # type: ignore[attr-defined]
        return reader


def _named(schema: Any) -> dict[str, Any]:
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


def compile_reader(schema: Any, *, numpy: bool = True) -> Reader:
    """Compile a reader for a fastavro-parsed schema (logical types stripped).

    The reader takes ``(data: bytes, pos: int)`` and returns ``(value,
    position after it)``. With ``numpy`` (the default) float/double arrays
    are read-only numpy arrays; without it they are lists of floats, exactly
    as fastavro returns them.
    """
    return _Compiler(_named(schema), numpy).build(schema)


Converter = Callable[[Any], Any]


def _to_float_array(dtype: np.dtype[Any]) -> Converter:
    def float_array(value: list[float]) -> np.ndarray[Any, Any]:
        if not value:
            return _EMPTY[dtype]
        arr = np.array(value, dtype=dtype)
        arr.flags.writeable = False  # like the arrays compiled readers return
        return arr

    return float_array


def numpy_converter(schema: Any) -> Converter | None:
    """A function turning a fastavro-decoded value of ``schema`` into its numpy-arrays form, or None.

    None means the schema holds no float/double arrays (nothing to convert).
    Records and maps are converted in place. In a union, a list is converted
    by the first array branch that holds float arrays, and a dict by the
    first record or map branch that does (exact for ``["null", X]``).
    """
    compiler = _Compiler(_named(schema), True)
    done: dict[str, Converter | None] = {}

    def make(s: Any) -> Converter | None:
        s = compiler.resolve(s)
        if isinstance(s, str):
            return None
        if isinstance(s, list):
            branches = [(compiler.resolve(b), make(b)) for b in s]
            for_list = next((c for b, c in branches if c and isinstance(b, dict) and b["type"] == "array"), None)
            for_dict = next((c for b, c in branches if c and isinstance(b, dict) and b["type"] != "array"), None)
            if for_list is None and for_dict is None:
                return None
            return lambda value: (
                for_list(value) if for_list and isinstance(value, list)
                else for_dict(value) if for_dict and isinstance(value, dict)
                else value
            )
        kind = s["type"]
        if kind == "array":
            items = compiler.resolve(s["items"])
            if isinstance(items, str) and items in FLOAT_DTYPES:
                return _to_float_array(FLOAT_DTYPES[items])
            each = make(items)
            return None if each is None else (lambda value: [each(v) for v in value])
        if kind == "map":
            each = make(s["values"])
            if each is None:
                return None

            def map_values(value: dict[str, Any]) -> dict[str, Any]:
                for key in value:
                    value[key] = each(value[key])
                return value

            return map_values
        if kind in ("record", "error"):
            name = s["name"]
            if name in done:  # seen before, or recursive: look it up when called
                return lambda value: (done[name] or (lambda v: v))(value)
            done[name] = None
            fields = [(f["name"], make(f["type"])) for f in s["fields"]]
            converters = [(n, c) for n, c in fields if c is not None]
            if not converters:
                return None

            def record(value: Any) -> Any:
                if isinstance(value, dict):
                    for field, convert in converters:
                        if field in value:
                            value[field] = convert(value[field])
                return value

            done[name] = record
            return record
        return None

    return make(schema)
