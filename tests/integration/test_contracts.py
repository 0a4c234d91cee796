"""Wire-format interop through the real local broker.

* Schema Registry framing: confluent-kafka's own ``AvroSerializer`` (``SerializingProducer``) writes,
  our ``AvroSerde`` reads; ours writes, their ``AvroDeserializer`` (``DeserializingConsumer``) reads,
  with and without a reader schema (evolution both ways). Both sides share one ``mock://`` registry
  client (the mock keeps its schemas per client instance, like one registry server).
* Single-object encoding: fastavro's own writer/reader with the header built from the Avro spec
  (``C3 01`` + little-endian CRC-64-AVRO of the parsing canonical form), against our serde.
* Keys and partitions: the same call_id lands on the same partition whichever client wrote it.
"""
from __future__ import annotations

import io
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    DeserializingConsumer,
    KafkaError,
    SerializingProducer,
    TopicPartition,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import StringDeserializer, StringSerializer
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

from emowatch.streams.kafka.clients import make_producer
from emowatch.topics.catalog import load_schema, schema_names
from emowatch.topics.examples import example_record
from emowatch.topics.registry import PRODUCER_PARTITIONER
from emowatch.topics.serde import AvroSerde, decode_key, encode_key

pytestmark = pytest.mark.integration
DEADLINE_S = 240
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
LOGICAL = {"AudioChunk": "audio", "FrameScores": "scores", "Alert": "alerts", "RuleSet": "rules", "DeadLetter": "dlq"}
# fields of a version after v2, with values (every one optional, default null): FrameScores v3's voice activity
LATER = {"FrameScores": {"speech": [0.0, 0.25, 0.5, 0.75, 1.0], "energy_db": [-100.0, -60.5, -30.25, -12.0, -3.0],
                         "vad": "silero-vad 6.2.3 context 512 ms"}}


def latest_record(name: str) -> dict:
    """The example record with every field of the latest version set."""
    return example_record(name, trace_id=TRACE_ID, **LATER.get(name, {}))


def as_latest(old: dict, name: str) -> dict:
    """A v1 record as the latest version reads it: the later fields at their null default."""
    return {**{f: None for f in load_schema(name).field_names}, **old}
KEYS = {"AudioChunk": "call_id", "FrameScores": "call_id", "Alert": "call_id", "RuleSet": "rule_set",
        "DeadLetter": "call_id"}
TIMESTAMP_FIELDS = ("event_time", "published_at", "failed_at")


# The notifier's records have one version so far (no evolution to test yet); their round trips are in
# tests/topics/test_notify_records.py and their topics in tests/integration/test_notify_control.py.
V1_ONLY = {"Silence": "silences", "Ack": "acks", "NotificationLog": "notifications"}


def test_every_schema_is_covered():
    assert sorted(schema_names()) == sorted({**LOGICAL, **V1_ONLY})


def registry_url() -> str:
    return f"mock://contracts-{uuid.uuid4().hex[:8]}"


def key_of(name: str, record: dict) -> str:
    return record[KEYS[name]]


def millis(record: dict) -> dict:
    """Their deserializer returns timestamp-millis as aware datetimes; ours as int epoch millis."""
    out = dict(record)
    for f in TIMESTAMP_FIELDS:
        if isinstance(out.get(f), datetime):
            out[f] = (out[f] - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return out


def read(consumer, topic: str, partitions: int, count: int) -> list:
    """Assign every partition of ``topic`` from the beginning and poll ``count`` messages (no group join)."""
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got, deadline = [], time.monotonic() + DEADLINE_S
    try:
        while len(got) < count:
            assert time.monotonic() < deadline, f"only {len(got)} of {count} messages on {topic} within {DEADLINE_S}s"
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                assert msg.error().code() == KafkaError._PARTITION_EOF, msg.error()
                continue
            got.append(msg)
    finally:
        consumer.close()
    return sorted(got, key=lambda m: (m.partition(), m.offset()))


def raw_consumer(kafka) -> Consumer:
    return Consumer({"bootstrap.servers": kafka.bootstrap_servers, "group.id": f"contracts-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "fetch.wait.max.ms": 50})


def their_producer(kafka, serde_client, schema_str: str) -> SerializingProducer:
    return SerializingProducer({
        "bootstrap.servers": kafka.bootstrap_servers, "partitioner": PRODUCER_PARTITIONER,
        "key.serializer": StringSerializer("utf_8"),
        "value.serializer": AvroSerializer(serde_client, schema_str, conf={"auto.register.schemas": True}),
    })


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_confluent_avro_serializer_output_is_read_by_our_serde(name, kafka_settings, topics):
    topic, url = topics.name(LOGICAL[name]), registry_url()
    ours = AvroSerde(name, registry_url=url)
    v1, latest = load_schema(name, 1), load_schema(name)
    assert latest.version >= 2
    old, new = example_record(name), latest_record(name)
    for schema, record in ((v1, old), (latest, new)):
        producer = their_producer(kafka_settings, ours.registry_client, schema.json_str)
        producer.produce(topic, key=key_of(name, record), value=record)
        assert producer.flush(30) == 0

    msgs = read(raw_consumer(kafka_settings), topic, topics.partitions_for(topics.spec(LOGICAL[name])), 2)
    assert [m.value()[0] for m in msgs] == [0, 0]  # Confluent wire format: magic 0 + schema id
    ids = [int.from_bytes(m.value()[1:5], "big") for m in msgs]
    assert len(set(ids)) == 2  # two schema versions registered under one subject
    assert len(ours.registry_client.get_versions(f"{topic}-value")) == 2
    decoded = [ours.decode(m.value(), topic=m.topic(), partition=m.partition(), offset=m.offset()) for m in msgs]
    assert decoded == [as_latest(old, name), new]
    assert [decode_key(m.key()) for m in msgs] == [key_of(name, old)] * 2
    v1_reader = AvroSerde(name, version=1, registry_url=url)  # an old consumer reads the new producer's data
    assert [v1_reader.decode(m.value(), topic=topic) for m in msgs] == [old, old]


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_our_registry_framed_output_is_read_by_confluent_avro_deserializer(name, kafka_settings, topics):
    topic, url = topics.name(LOGICAL[name]), registry_url()
    ours = AvroSerde(name, registry_url=url)
    record = latest_record(name)
    producer = make_producer(kafka_settings)
    producer.produce(topic, key=encode_key(key_of(name, record)), value=ours.encode(record, topic=topic),
                     headers=[("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode())])
    assert producer.flush(30) == 0
    partitions = topics.partitions_for(topics.spec(LOGICAL[name]))

    results = {}
    for label, reader_schema in (("writer", None), ("v1", load_schema(name, 1).json_str)):
        consumer = DeserializingConsumer({
            "bootstrap.servers": kafka_settings.bootstrap_servers, "group.id": f"contracts-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False, "fetch.wait.max.ms": 50, "key.deserializer": StringDeserializer("utf_8"),
            "value.deserializer": AvroDeserializer(ours.registry_client, reader_schema),
        })
        (msg,) = read(consumer, topic, partitions, 1)
        assert msg.key() == key_of(name, record)
        assert msg.headers() == [("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode())]
        results[label] = msg.value()
    assert any(isinstance(results["writer"].get(f), datetime) for f in TIMESTAMP_FIELDS)  # logical type kept
    assert millis(results["writer"]) == record
    v1_fields = load_schema(name, 1).field_names
    without_later = {k: v for k, v in record.items() if k in v1_fields}
    assert millis(results["v1"]) == without_later  # their resolution of our latest data to the v1 schema


# ---------------------------------------------------------------- single-object encoding

def crc64_avro(data: bytes) -> int:
    """The Avro specification's reference Rabin fingerprint (CRC-64-AVRO)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def spec_header(schema_json: str) -> bytes:
    canonical = to_parsing_canonical_form(json.loads(schema_json))
    fp = crc64_avro(canonical.encode("utf-8")).to_bytes(8, "little")
    assert fp == bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))  # fastavro agrees with the spec
    return b"\xc3\x01" + fp


@pytest.mark.parametrize("name", sorted(LOGICAL))
def test_single_object_encoding_interop_with_fastavro(name, kafka_settings, topics):
    topic = topics.name(LOGICAL[name])
    v1, latest = load_schema(name, 1), load_schema(name)
    record = latest_record(name)
    old = example_record(name)

    def fastavro_message(schema_json: str, rec: dict) -> bytes:
        out = io.BytesIO(spec_header(schema_json))
        out.seek(0, io.SEEK_END)
        schemaless_writer(out, parse_schema(json.loads(schema_json)), rec)
        return out.getvalue()

    ours = AvroSerde(name)
    values = [fastavro_message(v1.json_str, old), fastavro_message(latest.json_str, record),
              ours.encode(record, topic=topic)]
    producer = make_producer(kafka_settings)
    for v in values:
        producer.produce(topic, key=encode_key(key_of(name, record)), value=v)
    assert producer.flush(30) == 0
    msgs = read(raw_consumer(kafka_settings), topic, topics.partitions_for(topics.spec(LOGICAL[name])), 3)
    assert [m.value() for m in msgs] == values  # one key -> one partition -> produce order

    # ours reads fastavro's (both versions) and its own; a registry-configured serde reads them too
    for reader in (ours, AvroSerde(name, registry_url=registry_url())):
        assert [reader.decode(m.value(), topic=topic) for m in msgs] == [as_latest(old, name), record, record]
    # fastavro reads ours: header per the spec, body with the schema file
    ours_bytes = msgs[2].value()
    assert ours_bytes[:10] == spec_header(latest.json_str)
    body = io.BytesIO(ours_bytes[10:])
    assert millis(schemaless_reader(body, parse_schema(json.loads(latest.json_str)))) == record
    assert body.tell() == len(ours_bytes) - 10


def test_a_call_id_lands_on_the_same_partition_whichever_client_writes_it(kafka_settings, topics):
    """Co-partitioning across clients: their producer (with PRODUCER_PARTITIONER) and ours agree."""
    url = registry_url()
    ours = AvroSerde("AudioChunk", registry_url=url)
    calls = [f"call-{i:03d}" for i in range(24)]
    theirs = their_producer(kafka_settings, ours.registry_client, load_schema("AudioChunk").json_str)
    mine = make_producer(kafka_settings)
    for cid in calls:
        rec = example_record("AudioChunk", call_id=cid)
        theirs.produce(topics.audio, key=cid, value=rec)
        mine.produce(topics.audio, key=encode_key(cid), value=ours.encode(rec, topic=topics.audio))
    assert theirs.flush(30) == 0 and mine.flush(30) == 0
    msgs = read(raw_consumer(kafka_settings), topics.audio, topics.partitions, 2 * len(calls))
    placed: dict[str, set[int]] = {}
    for m in msgs:
        placed.setdefault(decode_key(m.key()), set()).add(m.partition())
    assert sorted(placed) == calls
    assert all(len(p) == 1 for p in placed.values()), placed
    assert len({next(iter(p)) for p in placed.values()}) > 1  # keys really spread over partitions
