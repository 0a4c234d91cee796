"""Rows -> one block of ClickHouse's ``Native`` format, column by column with numpy. Pure.

The sink's inserts are dominated by float arrays (a score message carries 50 x 9 frame logits): handing
them to the driver as Python rows costs a Python float object per value and a copy per row. Here a
column of float arrays becomes its offsets (``UInt64``) and one ``np.concatenate`` of the arrays as
read from the message (numpy views, :mod:`emowatch.topics.fastread`), strings are length-prefixed in one
``join``, and numbers go through ``np.asarray(...).tobytes()``. The block is sent with
``client.raw_insert(..., fmt="Native")`` (server HTTP and embedded chDB alike).

Format (ClickHouse ``Native`` input, no protocol revision): ``columns`` and ``rows`` as unsigned
LEB128, then per column its name, its type name and its data. Columns are sent as the plain types of
:data:`TYPES` (``String`` for a ``LowCardinality(String)`` column, ``Map(String, String)`` ...): ClickHouse
converts a Native column to the table's type on insert (``input_format_native_allow_types_conversion``,
on by default since ClickHouse 23.3). Byte order little-endian, as ClickHouse requires.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import chain
from typing import Any

import numpy as np

_VARINT1 = [bytes([i]) for i in range(128)]


def _varint(n: int) -> bytes:
    if n < 128:
        return _VARINT1[n]
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _strings(values: Sequence[str]) -> bytes:
    raw = [v.encode() for v in values]
    return b"".join(chain.from_iterable((_varint(len(b)), b) for b in raw))


def _offsets(lengths: Sequence[int]) -> bytes:
    return np.cumsum(np.asarray(lengths, dtype="<u8"), dtype="<u8").tobytes()


def _float_arrays(dtype: str) -> Callable[[Sequence[Any]], bytes]:
    def encode(values: Sequence[Any]) -> bytes:
        arrays = [np.asarray(v, dtype=dtype) for v in values]
        flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype)
        return _offsets([len(a) for a in arrays]) + flat.astype(dtype, copy=False).tobytes()
    return encode


def _string_arrays(values: Sequence[Sequence[str]]) -> bytes:
    return _offsets([len(v) for v in values]) + _strings(list(chain.from_iterable(values)))


def _string_maps(values: Sequence[dict[str, str]]) -> bytes:
    keys = list(chain.from_iterable(m.keys() for m in values))
    items = list(chain.from_iterable(m.values() for m in values))
    return _offsets([len(m) for m in values]) + _strings(keys) + _strings(items)


def _ms(value: datetime | int) -> int:
    return value if isinstance(value, int) else round(value.timestamp() * 1000)


def _numbers(dtype: str) -> Callable[[Sequence[Any]], bytes]:
    return lambda values: np.asarray(values, dtype=dtype).tobytes()


ENCODERS: dict[str, Callable[[Sequence[Any]], bytes]] = {
    "String": _strings,
    "Int64": _numbers("<i8"),
    "UInt32": _numbers("<u4"),
    "UInt16": _numbers("<u2"),
    "Bool": _numbers("u1"),
    "Float32": _numbers("<f4"),
    "Float64": _numbers("<f8"),
    "DateTime64(3, 'UTC')": lambda values: np.fromiter(map(_ms, values), "<i8", len(values)).tobytes(),
    "Array(Float32)": _float_arrays("<f4"),
    "Array(String)": _string_arrays,
    "Map(String, String)": _string_maps,
}


def native_block(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]) -> bytes:
    """``rows`` (lists in the order of ``columns``, each ``(name, type)`` with a type of :data:`ENCODERS`)
    as one Native block."""
    parts = [_varint(len(columns)), _varint(len(rows))]
    for i, (name, kind) in enumerate(columns):
        parts += [_strings([name, kind]), ENCODERS[kind]([row[i] for row in rows])]
    return b"".join(parts)
