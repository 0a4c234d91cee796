"""Record checks for the value serde's encode path.

:meth:`RecordChecker.prepare` runs cheap checks on every record (mapping,
unknown fields, required fields, top-level primitive types: the common bugs
such as a float ``event_time`` that the Avro writer would silently
truncate) and converts numpy values with ``tolist``. Deep validation runs only
after the writer failed, in :meth:`RecordChecker.explain`, to name the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fastavro
from fastavro.validation import ValidationError
from fastavro.validation import validate as fastavro_validate

from emowatch.topics.catalog import SchemaInfo, strip_logical_types
from emowatch.topics.errors import EmowatchError

__all__ = ["RecordChecker", "RecordProblem", "type_summary"]

_PRIMITIVES: dict[str, tuple[type | tuple[type, ...], str]] = {
    "int": (int, "an int"),
    "long": (int, "an int (long)"),
    "float": ((int, float), "a number"),
    "double": ((int, float), "a number"),
    "boolean": (bool, "a bool"),
    "string": (str, "a str"),
    "bytes": ((bytes, bytearray), "bytes"),
}


_RANGES = {"int": "int (32-bit signed)", "long": "long (64-bit signed int)"}


class RecordProblem(EmowatchError):
    """A record does not fit the schema; ``field`` is the top-level field when known."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class RecordChecker:
    """Precomputed checks for one schema version."""

    def __init__(self, schema: SchemaInfo) -> None:
        self.schema = schema
        self._fields = {f["name"]: f for f in schema.fields}
        self._required = tuple(n for n, f in self._fields.items() if "default" not in f)
        self._checks = tuple(
            (n, *_PRIMITIVES[kind]) for n, f in self._fields.items() if (kind := _primitive(f["type"])) in _PRIMITIVES
        )
        self._single_field: dict[str, Any] = {}

    def prepare(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Return a plain dict ready for the writer, or raise :class:`RecordProblem`."""
        name = self.schema.name
        if not isinstance(record, Mapping):
            raise RecordProblem(f"{name} record must be a mapping, got {type(record).__name__}")
        unknown = record.keys() - self._fields.keys()
        if unknown:
            first = sorted(map(str, unknown))[0]
            raise RecordProblem(
                f"{name} v{self.schema.version} has no field {first!r} (unknown fields: {sorted(map(str, unknown))})",
                first,
            )
        rec = {k: (v.tolist() if type(v).__module__ == "numpy" else v) for k, v in record.items()}
        for field in self._required:
            if rec.get(field) is None:
                raise RecordProblem(f"{name} field {field!r} is required", field)
        for field, types, what in self._checks:
            if field in rec:
                value = rec[field]
                if not isinstance(value, types) or (isinstance(value, bool) and types is not bool):
                    raise RecordProblem(
                        f"{name} field {field!r} must be {what}, got {type(value).__name__} {_short(value)}", field
                    )
        return rec

    def explain(self, rec: dict[str, Any], exc: BaseException) -> RecordProblem | None:
        """After the writer failed: the field at fault and why, or None if the record is valid."""
        for field, fdef in self._fields.items():
            if field not in rec:
                continue
            single = self._single(field)
            if single is None:
                continue
            try:
                ok = fastavro_validate({field: rec[field]}, single, raise_errors=True)
            except ValidationError as verr:
                nested = _primitive(fdef["type"]) is None and not _is_enum(fdef["type"])
                detail = f" ({'; '.join(map(str, verr.errors))[:300]})" if nested else ""
                return RecordProblem(
                    f"{self.schema.name} field {field!r} must be {type_summary(fdef['type'])}, got "
                    f"{type(rec[field]).__name__} {_short(rec[field])}{detail}",
                    field,
                )
            except Exception:  # noqa: BLE001 - anything fastavro rejects is a problem with the record
                ok = True
            if not ok:
                return RecordProblem(f"{self.schema.name} field {field!r} is invalid", field)
        try:
            fastavro_validate(rec, self.schema.parsed, raise_errors=True)
        except ValidationError as verr:
            return RecordProblem(f"invalid {self.schema.name} record: {'; '.join(map(str, verr.errors))[:500]}")
        except Exception:  # noqa: BLE001 - anything fastavro rejects is a problem with the record
            pass
        return None

    def _single(self, field: str) -> Any:
        """Parsed one-field record schema used to locate a bad field (None if it cannot stand alone)."""
        if field not in self._single_field:
            raw = self.schema.raw
            one = {"type": "record", "name": raw["name"], "namespace": raw.get("namespace", ""),
                   "fields": [strip_logical_types(self._fields[field])]}
            try:
                self._single_field[field] = fastavro.parse_schema(one)
            except Exception:  # noqa: BLE001 - refers to a named type defined in another field
                self._single_field[field] = None
        return self._single_field[field]


def type_summary(avro_type: Any) -> str:
    """Short human description of an Avro type: ``long (timestamp-millis)``, ``enum [A, B]``."""
    if isinstance(avro_type, str):
        return _RANGES.get(avro_type, avro_type)
    if isinstance(avro_type, list):
        return " | ".join(type_summary(t) for t in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "enum":
            return f"enum [{', '.join(avro_type.get('symbols', []))}]"
        if kind == "array":
            return f"array<{type_summary(avro_type.get('items'))}>"
        if kind == "map":
            return f"map<string, {type_summary(avro_type.get('values'))}>"
        if kind in ("record", "fixed"):
            return f"{kind} {avro_type.get('name')}"
        if "logicalType" in avro_type:
            return f"{type_summary(kind)} ({avro_type['logicalType']})"
        return type_summary(kind)
    return repr(avro_type)


def _primitive(avro_type: Any) -> str | None:
    """Primitive type of a field (``{"type": "long", "logicalType": ...}`` -> ``long``), else None."""
    if isinstance(avro_type, dict):
        avro_type = avro_type.get("type")
    return avro_type if isinstance(avro_type, str) and avro_type in _PRIMITIVES else None


def _is_enum(avro_type: Any) -> bool:
    return isinstance(avro_type, dict) and avro_type.get("type") == "enum"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
