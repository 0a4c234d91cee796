"""The notifier's records (Silence, Ack, NotificationLog): Avro round trips and the core's types."""
from __future__ import annotations

import pytest

from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.notify.model import NotificationLogEntry
from emowatch.streams.notify.records import (
    ack_from_record,
    ack_record,
    expired_silence_record,
    new_silence_record,
    silence_from_record,
    silence_state,
)
from emowatch.topics.examples import example_record
from emowatch.topics.serde import AvroSerde, SerdeError

TOPIC = "test.emowatch.notify.v1"
NOW = 1_704_164_645_678
HOUR = 3_600_000


@pytest.mark.parametrize("name", ["Silence", "Ack", "NotificationLog"])
def test_examples_round_trip(name: str) -> None:
    serde = AvroSerde(name)
    record = example_record(name)
    assert serde.decode(serde.encode(record, topic=TOPIC), topic=TOPIC) == {**record, "trace_id": None}


def test_silence_lifecycle_round_trips_and_feeds_the_core() -> None:
    serde = AvroSerde("Silence")
    rec = new_silence_record(['business_line="collections"'], NOW, NOW + HOUR, created_by="li", comment="x",
                             now_ms=NOW)
    back = serde.decode(serde.encode(rec, topic=TOPIC), topic=TOPIC)
    assert back["expired_at"] is None and silence_state(back, NOW) == "active"
    core = silence_from_record(back)
    assert core.active(NOW) and core.matches({"business_line": "collections"}) and core.ends_ms == NOW + HOUR

    gone = serde.decode(serde.encode(expired_silence_record(back, by="wang", now_ms=NOW + 60_000), topic=TOPIC),
                        topic=TOPIC)
    assert (gone["id"], gone["expired_by"], gone["expired_at"]) == (rec["id"], "wang", NOW + 60_000)
    assert silence_state(gone, NOW + 60_000) == "expired" and silence_state(gone, NOW + 59_999) == "active"
    assert silence_from_record(gone).ends_ms == NOW + 60_000
    with pytest.raises(MatcherError, match="already expired"):
        expired_silence_record(gone, by="wang", now_ms=NOW + 70_000)


def test_a_silence_expired_before_it_starts_silences_nothing() -> None:
    rec = new_silence_record(["team=a"], NOW + HOUR, NOW + 2 * HOUR, created_by="li", comment="x", now_ms=NOW)
    assert silence_state(rec, NOW) == "pending"
    assert silence_from_record(expired_silence_record(rec, by="li", now_ms=NOW + 1)) is None


@pytest.mark.parametrize(("matchers", "message"), [
    ([], "no matchers"), (['team=~".*"'], "also match alerts without"), (["team=~("], "invalid regex"),
    (["bad matcher"], "invalid matcher"),
])
def test_bad_silences_are_refused(matchers: list[str], message: str) -> None:
    with pytest.raises(MatcherError, match=message):
        new_silence_record(matchers, NOW, NOW + HOUR, created_by="li", comment="x", now_ms=NOW)


def test_silence_ids_are_fresh_uuids() -> None:
    a, b = (new_silence_record(["team=a"], NOW, NOW + HOUR, created_by="li", comment="x", now_ms=NOW)["id"]
            for _ in range(2))
    assert a != b and len(a) == 36


def test_ack_round_trip() -> None:
    serde = AvroSerde("Ack")
    rec = ack_record("a1", by="li", now_ms=NOW, comment="on it", call_id="c-9")
    back = serde.decode(serde.encode(rec, topic=TOPIC), topic=TOPIC)
    assert back == {**rec, "trace_id": None}
    core = ack_from_record(back)
    assert (core.alert_id, core.by, core.comment, core.at_ms) == ("a1", "li", "on it", NOW)
    assert ack_record("a1", by="li", now_ms=NOW)["call_id"] is None
    with pytest.raises(MatcherError):
        ack_record("a1", by=" ", now_ms=NOW)


def test_notification_log_entry_round_trips_through_avro() -> None:
    entry = NotificationLogEntry("oncall", '{}:oncall:{call_id="c"}', "FIRING", (("a1", "FIRING"), ("a2", "RESOLVED")),
                                 2, NOW, "ab" * 32)
    serde = AvroSerde("NotificationLog")
    back = serde.decode(serde.encode(entry.to_record(), topic=TOPIC), topic=TOPIC)
    assert NotificationLogEntry.from_record(back) == entry
    assert entry.log_key == 'oncall|{}:oncall:{call_id="c"}|FIRING'
    with pytest.raises(SerdeError):  # the status is an enum on the wire
        serde.encode({**entry.to_record(), "status": "MAYBE"}, topic=TOPIC)
