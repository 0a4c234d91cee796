"""Avro value serde for every emowatch topic, plus the UTF-8 key serde.

Two framings (see ``docs/contracts.md``):

* **Avro single-object encoding** (default, no registry):
  ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint + Avro body. The
  writer schema is found by fingerprint among the versions shipped in
  ``topics/schemas/``.
* **Confluent Schema Registry wire format** (when ``registry_url`` is set):
  ``00`` + 4-byte big-endian schema id + Avro body, subject ``<topic>-value``.

Readers accept both framings whatever they are configured with and resolve
the writer schema to their own (reader) version, so a v1 reader reads v2
data and a v2 reader reads v1 data. Every failure, on read or on write, is a
:class:`SerdeError`. ``timestamp-millis`` fields are plain ``int`` epoch
milliseconds in both directions.

This is the only module of ``emowatch.topics`` that touches a Kafka library,
and only ``confluent_kafka.schema_registry`` (with the
``confluent_kafka.serialization`` context its serializer needs), imported
lazily when a registry URL is configured.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from emowatch.topics.catalog import SchemaInfo, crc64_avro, fingerprint_table, load_schema, strip_logical_types
from emowatch.topics.errors import DeadLetterError
from emowatch.topics.resolution import FLOAT_ARRAYS, ReadPlan, plan_read
from emowatch.topics.security import redact_url
from emowatch.topics.validation import RecordChecker, RecordProblem

__all__ = [
    "REGISTRY_MAGIC",
    "SINGLE_OBJECT_MAGIC",
    "AvroSerde",
    "SerdeError",
    "decode_key",
    "encode_key",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
"""First two bytes of an Avro single-object encoded message."""
REGISTRY_MAGIC = 0x00
"""First byte of a Confluent Schema Registry framed message."""
_SO_HEADER = 10  # magic (2) + fingerprint (8)
_SR_HEADER = 5  # magic (1) + schema id (4)
_MAX_MISSING_IDS = 4096


class SerdeError(DeadLetterError, ValueError):
    """The one error type raised by every serde operation on bad input.

    Raised for random bytes, truncated messages, unknown fingerprints or
    registry ids, wrong magic bytes, missing keys and invalid records on
    encode. ``topic``, ``partition`` and ``offset`` say where the message came
    from (when the caller passed them); ``field`` names the offending record
    field on encode when it is known; ``reason`` is the bare explanation.
    """

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__("DECODE", reason)
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.field = field

    def __str__(self) -> str:
        where = [
            f"{label}={value}"
            for label, value in (("topic", self.topic), ("partition", self.partition), ("offset", self.offset))
            if value is not None
        ]
        return f"{' '.join(where)}: {self.reason}" if where else self.reason

    @property
    def dead_letter_reason(self) -> str:
        return str(self)


# ---------------------------------------------------------------- keys


def encode_key(call_id: str) -> bytes:
    """Encode a message key (call id, or rule-set id on the rules topic) as UTF-8."""
    if not isinstance(call_id, str) or not call_id:
        raise SerdeError(f"key must be a non-empty str, got {call_id!r}")
    return call_id.encode("utf-8")


def decode_key(
    data: bytes | None, *, topic: str | None = None, partition: int | None = None, offset: int | None = None
) -> str:
    """Decode a UTF-8 message key; :class:`SerdeError` for a missing, empty or non-UTF-8 key."""
    where = {"topic": topic, "partition": partition, "offset": offset}
    if data is None:
        raise SerdeError("message has no key (expected the UTF-8 call id)", **where)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SerdeError(f"key must be bytes, got {type(data).__name__}", **where)
    if len(data) == 0:
        raise SerdeError("message key is empty (expected the UTF-8 call id)", **where)
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SerdeError(f"message key is not valid UTF-8: {exc}", **where) from exc


# ---------------------------------------------------------------- registry client

_CLIENTS: dict[tuple[Any, ...], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _registry_client(url: str, config: Mapping[str, Any] | None) -> Any:
    """One shared SchemaRegistryClient per (url, config); ``mock://`` gives the in-memory mock.

    Sharing matters for ``mock://`` (each mock client has its own store) and
    saves connections and schema caches in production.
    """
    conf = dict(config or {})
    if conf.get("url", url) != url:
        raise ValueError(f"registry_config url {conf['url']!r} contradicts registry_url {url!r}")
    conf["url"] = url
    key = tuple(sorted((k, repr(v)) for k, v in conf.items()))
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            from confluent_kafka.schema_registry import SchemaRegistryClient

            factory = getattr(SchemaRegistryClient, "new_client", None)
            client = factory(conf) if factory is not None else SchemaRegistryClient(conf)
            _CLIENTS[key] = client
    return client


class _RegistryFraming:
    """Confluent wire format through ``confluent_kafka.schema_registry``."""

    def __init__(self, url: str, config: Mapping[str, Any] | None, schema: SchemaInfo, auto_register: bool):
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        self.url = redact_url(url)  # for messages: never leak user:password@
        self.client = _registry_client(url, config)
        # The registered schema is the original file (docs and logical types kept);
        # fastavro accepts int epoch millis for timestamp-millis on write.
        self._serializer = AvroSerializer(
            self.client, schema_str=schema.json_str, conf={"auto.register.schemas": auto_register}
        )
        self._ctx = lambda topic: SerializationContext(topic, MessageField.VALUE)

    def encode(self, record: dict[str, Any], topic: str) -> bytes:
        return self._serializer(record, self._ctx(topic))

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """Return the schema JSON registered under ``schema_id`` (raises on failure)."""
        schema = self.client.get_schema(schema_id)
        if (schema.schema_type or "AVRO") != "AVRO":
            raise ValueError(f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
        if schema.references:
            raise ValueError(f"schema id {schema_id} uses schema references, which emowatch does not use")
        return json.loads(schema.schema_str)


# ---------------------------------------------------------------- value serde


class AvroSerde:
    """Encode/decode one record schema (e.g. ``"FrameScores"``) for any topic.

    ``version`` selects the schema version written and read into (default:
    the latest shipped). With ``registry_url`` (``http(s)://...``, or
    ``mock://<name>`` for tests) values are written in Confluent framing and
    the schema is registered under ``<topic>-value`` when ``auto_register``;
    ``registry_config`` goes to ``SchemaRegistryClient`` (e.g.
    ``basic.auth.user.info``). Without it values use single-object encoding.
    Instances are cheap to share across threads.

    ``float_arrays`` only affects :meth:`decode`: ``"list"`` (default) returns
    ``array<float>``/``array<double>`` fields as lists of floats (fastavro);
    ``"numpy"`` returns them as read-only ``float32``/``float64`` numpy arrays
    (views of the message bytes; ``.copy()`` for a writable one), read by a
    decoder compiled for the writer schema (:mod:`emowatch.topics.fastread`),
    several times faster for FrameScores. Every other field, the framing
    checks and the errors are the same in both modes; data that needs full
    schema resolution (not the shipped versions) is read by fastavro and its
    arrays converted.
    """

    def __init__(
        self,
        schema_name: str,
        *,
        version: int | None = None,
        registry_url: str | None = None,
        registry_config: Mapping[str, Any] | None = None,
        auto_register: bool = True,
        float_arrays: str = "list",
    ) -> None:
        if float_arrays not in FLOAT_ARRAYS:
            raise ValueError(f"float_arrays must be one of {FLOAT_ARRAYS}, got {float_arrays!r}")
        self.float_arrays = float_arrays
        """``"list"`` or ``"numpy"``: how :meth:`decode` returns float/double arrays."""
        self.schema: SchemaInfo = load_schema(schema_name, version)
        self._header = SINGLE_OBJECT_MAGIC + self.schema.fingerprint
        self._checker = RecordChecker(self.schema)
        self._by_fingerprint: dict[bytes, ReadPlan] = {}
        self._by_schema_id: dict[int, ReadPlan] = {}
        self._missing_ids: dict[int, str] = {}  # registry 404s
        self._registry = (
            _RegistryFraming(registry_url, registry_config, self.schema, auto_register) if registry_url else None
        )

    @property
    def name(self) -> str:
        """Record schema name, e.g. ``"FrameScores"``."""
        return self.schema.name

    @property
    def version(self) -> int:
        """Schema version written, and read into."""
        return self.schema.version

    @property
    def framing(self) -> str:
        """``"registry"`` or ``"single-object"``: the framing :meth:`encode` writes."""
        return "registry" if self._registry is not None else "single-object"

    @property
    def registry_client(self) -> Any:
        """The shared ``SchemaRegistryClient`` (a mock for ``mock://`` URLs), or None."""
        return self._registry.client if self._registry is not None else None

    def __repr__(self) -> str:
        arrays = "" if self.float_arrays == "list" else f", float_arrays={self.float_arrays!r}"
        return f"AvroSerde({self.name!r}, version={self.version}, framing={self.framing!r}{arrays})"

    encode_key = staticmethod(encode_key)
    decode_key = staticmethod(decode_key)

    def encode(self, record: Mapping[str, Any], *, topic: str) -> bytes:
        """Validate ``record`` and return the framed Avro bytes for ``topic``.

        ``timestamp-millis`` fields take int epoch milliseconds; top-level
        numpy arrays/scalars are accepted. Raises :class:`SerdeError` whose
        ``field`` names the offending field.
        """
        try:
            rec = self._checker.prepare(record)
        except RecordProblem as problem:
            raise SerdeError(problem.reason, topic=topic, field=problem.field) from None
        try:
            if self._registry is None:
                out = io.BytesIO()
                out.write(self._header)
                schemaless_writer(out, self.schema.parsed, rec)
                return out.getvalue()
            return self._registry.encode(rec, topic)
        except Exception as exc:
            problem = self._checker.explain(rec, exc)
            if problem is not None:
                raise SerdeError(problem.reason, topic=topic, field=problem.field) from exc
            where = "schema registry" if self._registry is not None else "writer"
            raise SerdeError(f"cannot encode {self.name} ({where}): {type(exc).__name__}: {exc}", topic=topic) from exc

    def decode(
        self, data: bytes, *, topic: str, partition: int | None = None, offset: int | None = None
    ) -> dict[str, Any]:
        """Decode a value in either framing into a dict of this serde's schema version.

        Raises :class:`SerdeError` (carrying topic/partition/offset) for
        anything that is not one well-formed record of this schema.
        """
        where = {"topic": topic, "partition": partition, "offset": offset}
        if not isinstance(data, (bytes, bytearray, memoryview)):
            what = "no value (tombstone)" if data is None else f"a {type(data).__name__}"
            raise SerdeError(f"expected {self.name} bytes, got {what}", **where)
        size = len(data)
        if size >= _SO_HEADER and data[0] == 0xC3 and data[1] == 0x01:
            fp = bytes(data[2:_SO_HEADER])
            plan = self._by_fingerprint.get(fp) or self._plan_fingerprint(fp, where)
            start = _SO_HEADER
        elif size >= 1 and data[0] == REGISTRY_MAGIC:
            if self._registry is None:
                raise SerdeError(
                    "message uses Confluent Schema Registry framing (magic byte 0x00); "
                    "a registry URL (registry_url) is needed to read it",
                    **where,
                )
            if size < _SR_HEADER:
                raise SerdeError(f"truncated Schema Registry header: {size} of 5 bytes", **where)
            schema_id = int.from_bytes(data[1:_SR_HEADER], "big")
            plan = self._by_schema_id.get(schema_id) or self._plan_schema_id(schema_id, where)
            start = _SR_HEADER
        elif size == 0:
            raise SerdeError(f"empty message (expected a framed {self.name})", **where)
        elif data[0] == 0xC3 and (size == 1 or data[1] == 0x01):
            raise SerdeError(f"truncated single-object header: {size} of 10 bytes", **where)
        else:
            raise SerdeError(
                f"unknown framing: first bytes {bytes(data[:2]).hex()} are neither the single-object "
                "magic c301 nor the Schema Registry magic 00",
                **where,
            )
        if plan.compiled is not None and type(data) is not bytes:
            data = bytes(data)  # the compiled reader slices bytes (and its arrays must not view a mutable buffer)
        try:
            record, end = plan.read_at(data, start)
        except Exception as exc:
            raise SerdeError(
                f"malformed {self.name} body (written with {plan.label}): {type(exc).__name__}: {exc}", **where
            ) from exc
        if end != size or not isinstance(record, dict):
            raise SerdeError(
                f"{size - end} unexpected trailing bytes after the {self.name} record "
                f"(written with {plan.label})",
                **where,
            )
        return record

    def _plan_fingerprint(self, fp: bytes, where: dict[str, Any]) -> ReadPlan:
        info = fingerprint_table().get(fp)
        if info is None:
            raise SerdeError(
                f"unknown schema fingerprint {fp.hex()}: no {self.name} version shipped with this build has it "
                "(a newer producer? upgrade consumers first)",
                **where,
            )
        if info.name != self.name:
            raise SerdeError(f"message holds {info.name} v{info.version} data, this serde reads {self.name}", **where)
        plan = plan_read(
            f"{info.name} v{info.version}", info.raw, info.parsed, self.schema, float_arrays=self.float_arrays
        )
        self._by_fingerprint[fp] = plan
        return plan

    def _plan_schema_id(self, schema_id: int, where: dict[str, Any]) -> ReadPlan:
        assert self._registry is not None
        missing = self._missing_ids.get(schema_id)
        if missing is not None:
            raise SerdeError(missing, **where)
        try:
            raw = self._registry.writer_schema(schema_id)
            fp = crc64_avro(to_parsing_canonical_form(raw).encode("utf-8")).to_bytes(8, "little")
            known = fingerprint_table().get(fp)
            writer = known.parsed if known is not None else parse_schema(strip_logical_types(raw))
        except Exception as exc:
            reason = (
                f"schema id {schema_id} cannot be fetched from the registry at {self._registry.url}: "
                f"{type(exc).__name__}: {exc}"
            )
            if getattr(exc, "http_status_code", None) == 404:
                # Ids are never reused: remember unknown ones so garbage cannot hammer the registry.
                if len(self._missing_ids) >= _MAX_MISSING_IDS:
                    self._missing_ids.clear()
                self._missing_ids[schema_id] = reason
            raise SerdeError(reason, **where) from exc
        writer_name = writer.get("name") if isinstance(writer, dict) else str(writer)
        if writer_name != self.schema.full_name:
            raise SerdeError(
                f"registry schema id {schema_id} is {writer_name}, this serde reads {self.schema.full_name}", **where
            )
        label = f"registry id {schema_id}" + (f" ({known.name} v{known.version})" if known is not None else "")
        plan = plan_read(label, raw, writer, self.schema, float_arrays=self.float_arrays)
        self._by_schema_id[schema_id] = plan
        return plan
