"""Property tests: readers raise nothing but SerdeError; any valid record round-trips."""

from __future__ import annotations

import os
import uuid
from typing import Any

from avro_strategies import mutate, shipped_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emowatch.topics.catalog import schema_names, versions
from emowatch.topics.examples import example_record
from emowatch.topics.serde import AvroSerde, SerdeError

TOPIC = "fuzz.emowatch.v1"
REGISTRY = f"mock://fuzz-{uuid.uuid4().hex}"
# TEST_FULL=1 runs the long version (the project's convention for full-size tests).
SCALE = 20 if os.environ.get("TEST_FULL") == "1" else 1
FUZZ = settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# One reader per schema and version, all sharing one mock registry; and the
# valid messages they are fuzzed with, in both framings and both versions.
READERS = {(n, v): AvroSerde(n, version=v, registry_url=REGISTRY) for n in schema_names() for v in versions(n)}
PLAIN_READERS = {(n, v): AvroSerde(n, version=v) for n in schema_names() for v in versions(n)}
VALID = [
    (name, serde.encode(example_record(name), topic=TOPIC))
    for (name, _v), serde in READERS.items()
] + [(name, serde.encode(example_record(name), topic=TOPIC)) for (name, _v), serde in PLAIN_READERS.items()]


def _decode_everywhere(data: bytes) -> None:
    for serde in (*READERS.values(), *PLAIN_READERS.values()):
        try:
            out = serde.decode(data, topic=TOPIC, partition=0, offset=1)
        except SerdeError as err:
            assert err.topic == TOPIC and err.offset == 1
        else:
            assert isinstance(out, dict) and list(out) == list(serde.schema.field_names)


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes_raise_only_serde_error(data: bytes) -> None:
    _decode_everywhere(data)


@FUZZ
@given(st.sampled_from([h for _, m in VALID for h in (m[:10], m[:5])]), st.binary(max_size=200))
def test_valid_header_with_random_body(header: bytes, body: bytes) -> None:
    _decode_everywhere(header + body)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    _, data = draw(st.sampled_from(VALID))
    return mutate(draw, data)


@FUZZ
@given(mutated())
def test_mutated_messages_raise_only_serde_error(data: bytes) -> None:
    _decode_everywhere(data)


# ---------------------------------------------------------------- valid records from the schema


RECORDS = shipped_records()


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(RECORDS, st.booleans())
def test_any_valid_record_round_trips(item: tuple[tuple[str, int], dict[str, Any]], registry: bool) -> None:
    (name, version), record = item
    serde = READERS[(name, version)] if registry else PLAIN_READERS[(name, version)]
    data = serde.encode(record, topic=TOPIC)
    assert serde.decode(data, topic=TOPIC) == record
    other = READERS.get((name, 3 - version), READERS[(name, version)])  # v1-only schemas: the same version
    out = other.decode(data, topic=TOPIC)
    assert {k: out[k] for k in out if k != "trace_id"} == {k: record[k] for k in record if k != "trace_id"}
