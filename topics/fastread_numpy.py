"""Float arrays of an already decoded Avro value as numpy arrays (what compiled readers return).

For values read through fastavro's full schema resolution (:mod:`emowatch.topics.resolution`),
so that ``float_arrays="numpy"`` gives the same arrays whichever path decoded a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from emowatch.topics.fastread_wire import EMPTY_ARRAYS, FLOAT_DTYPES, named_types, resolve

__all__ = ["numpy_converter"]

Converter = Callable[[Any], Any]


def _to_float_array(dtype: np.dtype[Any]) -> Converter:
    def float_array(value: list[float]) -> np.ndarray[Any, Any]:
        if not value:
            return EMPTY_ARRAYS[dtype]
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
    named = named_types(schema)
    done: dict[str, Converter | None] = {}

    def make(s: Any) -> Converter | None:
        s = resolve(s, named)
        if isinstance(s, str):
            return None
        if isinstance(s, list):
            branches = [(resolve(b, named), make(b)) for b in s]
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
            items = resolve(s["items"], named)
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
