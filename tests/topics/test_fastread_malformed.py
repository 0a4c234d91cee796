"""Compiled reader on malformed input: every error is a SerdeError, and numpy mode agrees with list mode."""

from __future__ import annotations

import pytest
from avro_strategies import mutate
from fastread_cases import (
    ALL,
    LISTS,
    NUMPY,
    PROPS,
    TOPIC,
    check_agree,
    outcome,
    realistic_scores,
    scores_message,
    zigzag,
)
from hypothesis import given
from hypothesis import strategies as st

from emowatch.topics.catalog import versions
from emowatch.topics.examples import example_record
from emowatch.topics.serde import SerdeError


def test_every_prefix_of_a_frame_scores_message_is_an_error() -> None:
    data = LISTS[("FrameScores", 2)].encode(realistic_scores(), topic=TOPIC)
    for cut in range(len(data)):
        err = outcome(NUMPY[("FrameScores", 2)], data[:cut])
        assert isinstance(err, SerdeError), cut
        assert isinstance(outcome(LISTS[("FrameScores", 2)], data[:cut]), SerdeError)
        if cut >= 10:
            assert "malformed FrameScores body (written with FrameScores v2)" in err.reason


def test_flipped_bytes_agree_with_list_mode() -> None:
    data = LISTS[("FrameScores", 2)].encode(example_record("FrameScores", trace_id="t"), topic=TOPIC)
    for i in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            flipped = bytearray(data)
            flipped[i] ^= mask
            check_agree("FrameScores", 2, bytes(flipped))


@pytest.mark.parametrize("tail", [b"\x00", b"abc"])
def test_trailing_bytes(tail: bytes) -> None:
    data = LISTS[("FrameScores", 1)].encode(example_record("FrameScores"), topic=TOPIC) + tail
    with pytest.raises(SerdeError, match=f"{len(tail)} unexpected trailing bytes .*FrameScores v1"):
        NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)
    check_agree("FrameScores", 2, data)


@pytest.mark.parametrize(
    ("field", "raw", "error"),
    [
        ("role", zigzag(3), "KeyError"),  # enum index past the symbols
        ("role", zigzag(-1), "KeyError"),  # negative enum index (fastavro reads the last symbol)
        ("call_id", zigzag(-2) + b"ab", "negative length"),
        ("call_id", zigzag(2) + b"\xff\xfe", "UnicodeDecodeError"),
        ("embedding", zigzag(2) + b"\x00", "union branch index 2"),
        ("embedding", zigzag(-1) + b"\x00", "union branch index -1"),
        ("seq", b"\x80" * 10 + b"\x01", "varint longer than 10 bytes"),
        ("seq", b"\xff" * 9 + b"\x7f", "does not fit in 64 bits"),
        ("labels", zigzag(10**6) + b"\x00", "cannot fit"),
    ],
)
def test_bad_values_are_serde_errors(field: str, raw: bytes, error: str) -> None:
    data = scores_message(realistic_scores(), {field: raw})
    with pytest.raises(SerdeError, match=f"malformed FrameScores body .*{error}"):
        NUMPY[("FrameScores", 2)].decode(data, topic=TOPIC)
    check_agree("FrameScores", 2, data)


VALID = [(nv, LISTS[nv].encode(example_record(nv[0]), topic=TOPIC)) for nv in ALL]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[tuple[str, int], bytes]:
    nv, data = draw(st.sampled_from(VALID))
    return nv, mutate(draw, data)


@PROPS
@given(mutated())
def test_mutated_messages_agree_with_list_mode(item: tuple[tuple[str, int], bytes]) -> None:
    (name, _), data = item
    for version in versions(name):
        check_agree(name, version, data)


@PROPS
@given(st.sampled_from([(nv, m[:10]) for nv, m in VALID]), st.binary(max_size=200))
def test_valid_header_with_random_body_agrees(item: tuple[tuple[str, int], bytes], body: bytes) -> None:
    (name, version), header = item
    check_agree(name, version, header + body)
