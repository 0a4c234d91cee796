"""Avro schema catalogue (module ``emowatch.topics.catalog``): load the ``topics/schemas/<Name>.v<N>.avsc`` files.

Every schema version shipped in the package is loaded once and cached as a
:class:`SchemaInfo`: the original JSON (what is registered in a Schema
Registry), a fastavro-parsed copy with ``logicalType`` removed (so that
``timestamp-millis`` fields read and write as plain ``int`` epoch
milliseconds; the wire bytes are the same), the Parsing Canonical Form and
its CRC-64-AVRO (Rabin) fingerprint, which identifies the schema in Avro
single-object encoding.

This module knows nothing about Kafka.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from emowatch.streams.resources import schemas_dir
from emowatch.topics.errors import EmowatchError

__all__ = [
    "SchemaInfo",
    "SchemaNotFoundError",
    "crc64_avro",
    "fingerprint_table",
    "latest_version",
    "load_schema",
    "schema_names",
    "strip_logical_types",
    "versions",
]

_FILE_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")

# CRC-64-AVRO, exactly as in the Avro specification ("Schema Fingerprints").
_EMPTY64 = 0xC15D213AA4D7A795


def _make_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY64 & -(fp & 1))
        table.append(fp)
    return tuple(table)


_FP_TABLE = _make_table()


def crc64_avro(data: bytes) -> int:
    """Return the 64-bit Rabin fingerprint (CRC-64-AVRO) of ``data`` as an unsigned int.

    Single-object encoding writes it as 8 little-endian bytes:
    ``crc64_avro(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"``.
    """
    fp = _EMPTY64
    for byte in data:
        fp = (fp >> 8) ^ _FP_TABLE[(fp ^ byte) & 0xFF]
    return fp


class SchemaNotFoundError(EmowatchError, LookupError):
    """No ``.avsc`` file for the requested schema name or version."""


def strip_logical_types(schema: Any) -> Any:
    """Return a deep copy of a schema (JSON form) without any ``logicalType`` keys.

    Logical types do not change the binary encoding, so reading and writing
    with the stripped schema gives identical bytes, but fastavro then returns
    and accepts the underlying ``long``/``int``/``bytes`` values (e.g. epoch
    milliseconds as ``int``) instead of ``datetime`` objects.
    """
    if isinstance(schema, dict):
        return {k: strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [strip_logical_types(v) for v in schema]
    return schema


@dataclass(frozen=True, eq=False)
class SchemaInfo:
    """One version of one record schema. Treat the dicts as read-only."""

    name: str
    """Short record name, e.g. ``"FrameScores"``."""
    version: int
    """Version number from the file name (``FrameScores.v2.avsc`` -> 2)."""
    full_name: str
    """Namespace-qualified name, e.g. ``"emowatch.v1.FrameScores"``."""
    raw: dict[str, Any]
    """The schema JSON as written in the file (with docs and logical types)."""
    json_str: str
    """Compact JSON text of ``raw``: what is registered in a Schema Registry."""
    parsed: dict[str, Any]
    """fastavro-parsed schema with logical types stripped (ints for timestamps)."""
    canonical: str
    """Parsing Canonical Form."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form, 8 bytes little-endian (single-object header order)."""

    @property
    def field_names(self) -> tuple[str, ...]:
        """Top-level field names in schema order."""
        return tuple(f["name"] for f in self.raw["fields"])

    @property
    def fields(self) -> tuple[dict[str, Any], ...]:
        """Top-level field definitions (original JSON, with logical types)."""
        return tuple(self.raw["fields"])

    def __repr__(self) -> str:
        return f"SchemaInfo({self.name!r}, v{self.version}, fingerprint={self.fingerprint.hex()})"


@lru_cache(maxsize=1)
def _catalogue() -> dict[str, tuple[int, ...]]:
    found: dict[str, list[int]] = {}
    for path in schemas_dir().glob("*.avsc"):
        m = _FILE_RE.match(path.name)
        if m is None:
            raise SchemaNotFoundError(f"schema file {path.name!r} is not named <Name>.v<N>.avsc")
        found.setdefault(m["name"], []).append(int(m["version"]))
    return {name: tuple(sorted(vs)) for name, vs in sorted(found.items())}


def schema_names() -> tuple[str, ...]:
    """Names of all record schemas shipped in ``topics/schemas/``."""
    return tuple(_catalogue())


def versions(name: str) -> tuple[int, ...]:
    """All versions of schema ``name``, ascending."""
    try:
        return _catalogue()[name]
    except KeyError:
        raise SchemaNotFoundError(
            f"unknown schema {name!r}; known: {', '.join(schema_names())}"
        ) from None


def latest_version(name: str) -> int:
    """Highest version number of schema ``name``."""
    return versions(name)[-1]


def load_schema(name: str, version: int | None = None) -> SchemaInfo:
    """Load (cached) schema ``name`` at ``version`` (default: the latest).

    Raises :class:`SchemaNotFoundError` for an unknown name or version.
    """
    if version is None:
        version = latest_version(name)
    elif version not in versions(name):
        raise SchemaNotFoundError(
            f"schema {name!r} has no version {version}; known versions: {list(versions(name))}"
        )
    return _load(name, version)


@cache
def _load(name: str, version: int) -> SchemaInfo:
    path = schemas_dir() / f"{name}.v{version}.avsc"
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("type") != "record" or raw.get("name") != name:
        raise SchemaNotFoundError(f"{path.name}: expected a record named {name!r}")
    namespace = raw.get("namespace", "")
    full_name = f"{namespace}.{name}" if namespace else name
    parsed = fastavro.parse_schema(strip_logical_types(raw))
    canonical = to_parsing_canonical_form(raw)
    fingerprint = crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
    return SchemaInfo(
        name=name,
        version=version,
        full_name=full_name,
        raw=raw,
        json_str=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        parsed=parsed,
        canonical=canonical,
        fingerprint=fingerprint,
    )


@lru_cache(maxsize=1)
def fingerprint_table() -> dict[bytes, SchemaInfo]:
    """Map the 8-byte fingerprint of every shipped schema version to its :class:`SchemaInfo`.

    Raises ``ValueError`` if two versions share a canonical form (a version
    that changed nothing but docs/defaults would be indistinguishable on the wire).
    """
    table: dict[bytes, SchemaInfo] = {}
    for name in schema_names():
        for version in versions(name):
            info = _load(name, version)
            other = table.get(info.fingerprint)
            if other is not None:
                raise ValueError(
                    f"{name} v{version} and {other.name} v{other.version} have the same "
                    "parsing canonical form; a new version must change the wire schema"
                )
            table[info.fingerprint] = info
    return table
