"""Dead-letter records and DeadLetterError."""

from __future__ import annotations

import pickle

import pytest

from emowatch.topics.dlq import MAX_REASON_CHARS, STAGES, DeadLetterError, dead_letter
from emowatch.topics.serde import AvroSerde, SerdeError

BASE = dict(
    source_topic="emowatch.scores.v1",
    source_partition=2,
    source_offset=99,
    key=b"call-9",
    value=b"\x00garbage",
    call_id="call-9",
    service="emowatch-rules-vip",
    now_ms=1_700_000_000_000,
)


@pytest.mark.parametrize("version", [1, 2])
def test_record_encodes_with_the_deadletter_schema(version: int) -> None:
    err = SerdeError("unknown framing", topic="emowatch.scores.v1", partition=2, offset=99)
    rec = dead_letter(
        stage="decode", reason=str(err), error=err, headers=[("a", b"1"), ("a", b"2"), ("n", None)], **BASE
    )
    assert rec["stage"] == "DECODE" and rec["error_type"] == "SerdeError"
    serde = AvroSerde("DeadLetter", version=version)
    out = serde.decode(serde.encode(rec, topic="emowatch.dlq.v1"), topic="emowatch.dlq.v1")
    assert out["headers"] == [{"key": "a", "value": b"1"}, {"key": "a", "value": b"2"}, {"key": "n", "value": None}]
    assert (out["key"], out["value"], out["failed_at"]) == (b"call-9", b"\x00garbage", 1_700_000_000_000)
    assert out["source_partition"] == 2 and out["source_offset"] == 99


def test_defaults_for_unknown_position_and_mapping_headers() -> None:
    rec = dead_letter(
        stage="SEND", reason="", error=TimeoutError("broker gone"), headers={"h": "v"},
        **{**BASE, "source_partition": None, "source_offset": None, "call_id": None, "key": None},
    )
    assert (rec["source_partition"], rec["source_offset"]) == (-1, -1)
    assert rec["reason"] == "broker gone" and rec["error_type"] == "TimeoutError"
    assert rec["headers"] == [{"key": "h", "value": b"v"}] and rec["key"] is None and rec["call_id"] is None
    AvroSerde("DeadLetter").encode(rec, topic="dlq")


def test_every_stage_and_bad_stage() -> None:
    for stage in STAGES:
        assert dead_letter(stage=stage.lower(), reason="r", error=None, headers=None, **BASE)["stage"] == stage
    with pytest.raises(ValueError, match="unknown stage 'parse'"):
        dead_letter(stage="parse", reason="r", error=None, headers=None, **BASE)
    with pytest.raises(TypeError, match="now_ms"):
        dead_letter(stage="SINK", reason="r", error=None, headers=None, **{**BASE, "now_ms": 1.5})


def test_dead_letter_error_carries_stage_reason_and_cause() -> None:
    cause = KeyError("rule")
    try:
        try:
            raise cause
        except KeyError as exc:
            raise DeadLetterError("evaluate", "rule set missing") from exc
    except DeadLetterError as err:
        caught = err
    assert (caught.stage, caught.reason) == ("EVALUATE", "rule set missing")
    rec = dead_letter(stage=caught.stage, reason=caught.reason, error=caught, headers=None, **BASE)
    assert rec["error_type"] == "KeyError"
    assert dead_letter(stage="INFER", reason="x", error=DeadLetterError("infer", "x"), headers=None, **BASE)[
        "error_type"
    ] == "DeadLetterError"
    back = pickle.loads(pickle.dumps(DeadLetterError("sink", "disk full", cause=OSError("x"))))
    assert (back.stage, back.reason, type(back.cause)) == ("SINK", "disk full", OSError)
    with pytest.raises(ValueError):
        DeadLetterError("nowhere", "x")


def test_long_reasons_are_cut_and_odd_types_do_not_fail() -> None:
    rec = dead_letter(
        stage="INFER", reason="x" * 10_000, error=None, headers=[(b"bin", 5)], **{**BASE, "value": "text"}
    )
    assert len(rec["reason"]) <= MAX_REASON_CHARS and rec["reason"].endswith("[reason cut]")
    assert rec["headers"] == [{"key": "bin", "value": b"5"}] and rec["value"] == b"text"
    AvroSerde("DeadLetter").encode(rec, topic="dlq")
