"""The pure ingest path: WAV header parsing and cutting a byte stream into AudioChunk records."""
from __future__ import annotations

import numpy as np
import pytest
from gateway_wav import LIST_CHUNK, chunk, fmt_chunk, pcm_bytes, tone, wav_bytes
from hypothesis import given, settings
from hypothesis import strategies as st

from emowatch.streams.gateway.ingest import Cursors, IngestError, StreamChunker, check_call_id
from emowatch.topics.serde import AvroSerde

T0 = 1_700_000_000_000


def chunker(**kw) -> StreamChunker:
    return StreamChunker(kw.pop("call_id", "c-1"), capture_start_ms=T0, **kw)


def run(data: bytes, pieces: list[int] | None = None, end: bool = True, **kw) -> list[dict]:
    ch = chunker(**kw)
    out, at = [], 0
    for cut in sorted(pieces or []):
        out += ch.feed(data[at:cut])
        at = cut
    out += ch.feed(data[at:])
    return out + ch.finish(end)


def test_mono_wav_in_one_second_chunks_keeps_rate_and_encoding():
    samples = tone(3.5, rate=8000)
    recs = run(wav_bytes(samples, 8000), business_line="vip", attributes={"agent_id": "A7"})
    assert [r["seq"] for r in recs] == [0, 1, 2, 3]
    assert [r["start_ms"] for r in recs] == [0, 1000, 2000, 3000]
    assert [r["event_time"] - T0 for r in recs] == [0, 1000, 2000, 3000]
    assert [r["end_of_call"] for r in recs] == [False, False, False, True]
    assert {(r["role"], r["sample_rate"], r["encoding"], r["channels"], r["business_line"]) for r in recs} == {
        ("MIXED", 8000, "PCM_S16LE", 1, "vip")}
    assert recs[0]["attributes"] == {"agent_id": "A7"}
    assert b"".join(r["audio"] for r in recs) == pcm_bytes(samples)
    assert [len(r["audio"]) for r in recs] == [16000, 16000, 16000, 8000]


def test_records_follow_the_audio_chunk_schema():
    serde = AvroSerde("AudioChunk")
    for rec in run(wav_bytes(tone(1.2, channels=2)), stereo_roles=("CUSTOMER", "AGENT")):
        assert serde.decode(serde.encode(rec, topic="t"), topic="t") == rec


def test_stereo_becomes_one_mono_stream_per_channel():
    samples = tone(2.5, rate=48000, channels=2, seed=3)
    recs = run(wav_bytes(samples, 48000, encoding="PCM_F32LE"), stereo_roles=("CUSTOMER", "AGENT"))
    for c, role in enumerate(("CUSTOMER", "AGENT")):
        mine = [r for r in recs if r["role"] == role]
        assert [r["seq"] for r in mine] == [0, 1, 2] and [r["end_of_call"] for r in mine] == [False, False, True]
        assert {r["channels"] for r in mine} == {1}
        assert b"".join(r["audio"] for r in mine) == pcm_bytes(samples[:, c:c + 1], "PCM_F32LE")


def test_stereo_without_roles_stays_interleaved():
    samples = tone(1.0, channels=2)
    recs = run(wav_bytes(samples), role="AGENT")
    assert [(r["role"], r["channels"]) for r in recs] == [("AGENT", 2)]
    assert recs[0]["audio"] == pcm_bytes(samples)


@pytest.mark.parametrize("encoding", ["PCM_S16LE", "PCM_F32LE"])
def test_extensible_format_with_list_chunks_before_and_after_data(encoding):
    samples = tone(1.3)
    data = wav_bytes(samples, encoding=encoding, extensible=True, before_data=LIST_CHUNK, after_data=LIST_CHUNK)
    recs = run(data)
    assert {r["encoding"] for r in recs} == {encoding}
    assert b"".join(r["audio"] for r in recs) == pcm_bytes(samples, encoding)  # the trailing LIST is not audio


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_streamed_wav_with_unknown_data_size(size):
    samples = tone(2.2)
    recs = run(wav_bytes(samples, data_size=size))
    assert b"".join(r["audio"] for r in recs) == pcm_bytes(samples) and len(recs) == 3


WHOLE = wav_bytes(tone(3.1, rate=11025, channels=2, seed=9), 11025, before_data=LIST_CHUNK, after_data=LIST_CHUNK)


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(0, len(WHOLE)), max_size=12), lookahead=st.booleans())
def test_every_split_of_the_bytes_gives_the_same_chunks(cuts, lookahead):
    whole = run(WHOLE, stereo_roles=("CUSTOMER", "AGENT"))
    assert run(WHOLE, cuts, stereo_roles=("CUSTOMER", "AGENT"), lookahead=lookahead) == whole


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, 20_000), max_size=8), end=st.booleans())
def test_raw_pcm_splits_and_continuation(cuts, end):
    samples = tone(1.25, rate=8000, seed=1)
    data = pcm_bytes(samples, "PCM_F32LE")
    recs = run(data, [c for c in cuts if c <= len(data)], end=end, encoding="pcm_f32le", sample_rate=8000, channels=1)
    assert [r["start_ms"] for r in recs] == [0, 1000] and recs[-1]["end_of_call"] is end
    assert b"".join(r["audio"] for r in recs) == data


def test_a_call_continues_over_requests():
    cursors = Cursors()
    first = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1, role="CUSTOMER")
    recs = first.feed(pcm_bytes(tone(1.5))) + first.finish(False)
    cursors.set("c-1", first.cursor())
    second = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1, role="CUSTOMER", start=cursors.get("c-1"))
    recs += second.feed(pcm_bytes(tone(2.0))) + second.finish(True)
    assert [r["seq"] for r in recs] == [0, 1, 2, 3]
    assert [r["start_ms"] for r in recs] == [0, 1000, 1500, 2500]
    assert [r["end_of_call"] for r in recs] == [False, False, False, True]
    assert recs[2]["event_time"] == T0  # capture start of the second request


def test_cursors_forget_the_least_recently_used_call():
    c = Cursors(max_calls=2)
    c.set("a", {"MIXED": (1, 1000)})
    c.set("b", {"MIXED": (2, 2000)})
    c.get("a")
    c.set("c", {"MIXED": (3, 3000)})
    assert len(c) == 2 and c.get("a") == {} and c.get("c") == {"MIXED": (3, 3000)}
    c.drop("c")
    assert c.get("c") == {}


def test_without_lookahead_a_chunk_leaves_as_soon_as_complete():
    data = pcm_bytes(tone(1.0))
    live = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1, lookahead=False)
    held = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1)
    assert len(live.feed(data)) == 1 and held.feed(data) == []
    assert [r["end_of_call"] for r in held.finish(True)] == [True]


def test_completion_time_is_the_feed_that_brought_the_last_byte():
    ch = chunker(encoding="pcm_s16le", sample_rate=8000, channels=1)
    data = pcm_bytes(tone(2.5, rate=8000))
    assert ch.feed_timed(data[:10_000], now=1.0) == []
    assert ch.feed_timed(data[10_000:16_000], now=2.0) == []  # complete, held for a possible end_of_call
    got = ch.feed_timed(data[16_000:16_010], now=3.0) + ch.feed_timed(data[16_010:40_000], now=4.0)
    got += ch.finish_timed(True, now=9.0)
    assert [(r["seq"], t) for r, t in got] == [(0, 2.0), (1, 4.0), (2, 4.0)]


def test_memory_stays_bounded_on_a_long_stream():
    ch = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1, lookahead=True)
    piece = bytes(65536)
    peak = 0
    for _ in range(300):  # 10 minutes of audio
        ch.feed(piece)
        peak = max(peak, ch.buffered_bytes)
    assert peak <= 32000 + len(piece)


# ---- refusals ------------------------------------------------------------------------------------

def _code(data: bytes, **kw) -> tuple[str, int]:
    with pytest.raises(IngestError) as info:
        run(data, **kw)
    return info.value.code, info.value.http_status


def _wav_with_fmt(fmt: bytes, data: bytes = b"\0" * 64) -> bytes:
    body = b"WAVE" + fmt + chunk(b"data", data)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


@pytest.mark.parametrize(("data", "expected"), [
    (b"", ("empty_body", 422)),
    (b"RIFF\0\0\0\0WAV", ("bad_wav_header", 400)),
    (b"ID3\x03" + bytes(100), ("bad_wav_header", 400)),
    (b"RIFF\0\0\0\0WAVE" + chunk(b"data", b"\0\0"), ("bad_wav_header", 400)),
    (_wav_with_fmt(fmt_chunk(1, 1, 16000, 24)), ("unsupported_encoding", 415)),
    (_wav_with_fmt(fmt_chunk(1, 1, 16000, 8)), ("unsupported_encoding", 415)),
    (_wav_with_fmt(fmt_chunk(6, 1, 8000, 8)), ("unsupported_encoding", 415)),
    (_wav_with_fmt(fmt_chunk(3, 1, 16000, 64)), ("unsupported_encoding", 415)),
    (_wav_with_fmt(fmt_chunk(1, 1, 16000, 16, extensible=True, sub_guid_tail=bytes(14))),
     ("unsupported_encoding", 415)),
    (_wav_with_fmt(fmt_chunk(1, 1, 12345, 16)), ("unsupported_rate", 422)),
    (_wav_with_fmt(fmt_chunk(1, 3, 16000, 16)), ("unsupported_channels", 422)),
    (_wav_with_fmt(fmt_chunk(1, 1, 16000, 16, align=4)), ("bad_wav_header", 400)),
    (_wav_with_fmt(fmt_chunk(1, 1, 16000, 16), data=b""), ("empty_body", 422)),
    (wav_bytes(tone(1.0))[:30], ("bad_wav_header", 400)),
])
def test_bad_input_is_refused_with_its_code(data, expected):
    assert _code(data) == expected


def test_refusals_come_before_any_record():
    ch = chunker()
    with pytest.raises(IngestError):
        ch.feed(_wav_with_fmt(fmt_chunk(1, 1, 16000, 24)))


@pytest.mark.parametrize(("kw", "expected"), [
    ({"encoding": "mp3"}, ("unsupported_encoding", 415)),
    ({"encoding": "pcm_s16le", "channels": 1}, ("bad_parameter", 400)),
    ({"encoding": "pcm_s16le", "sample_rate": 16000, "channels": 4}, ("unsupported_channels", 422)),
    ({"encoding": "pcm_f32le", "sample_rate": 9000, "channels": 1}, ("unsupported_rate", 422)),
    ({"call_id": "a b"}, ("invalid_call_id", 400)),
])
def test_bad_parameters_are_refused_before_reading(kw, expected):
    with pytest.raises(IngestError) as info:
        chunker(**kw)
    assert (info.value.code, info.value.http_status) == expected


def test_known_sizes_are_checked_before_any_record():
    raw = dict(encoding="pcm_s16le", sample_rate=16000, channels=1)
    with pytest.raises(IngestError, match="truncated"):
        chunker(expected_bytes=1001, **raw)
    with pytest.raises(IngestError, match="too_large"):
        chunker(expected_bytes=16000 * 2 * 11, max_call_s=10, **raw)
    header_says_an_hour = wav_bytes(tone(0.5), data_size=16000 * 2 * 3600)
    assert _code(header_says_an_hour, max_call_s=60) == ("too_large", 413)


def test_an_unannounced_stream_is_cut_at_the_duration_limit():
    ch = chunker(encoding="pcm_s16le", sample_rate=8000, channels=1, max_call_s=2.5)
    recs = ch.feed(pcm_bytes(tone(4.0, rate=8000)))
    assert ch.cut
    recs += ch.finish(True)
    assert sum(len(r["audio"]) for r in recs) == 2.5 * 8000 * 2 and recs[-1]["end_of_call"]


def test_a_trailing_partial_frame_is_dropped_and_reported():
    ch = chunker(encoding="pcm_s16le", sample_rate=8000, channels=1)
    recs = ch.feed(pcm_bytes(tone(0.5, rate=8000)) + b"\x01") + ch.finish(True)
    assert ch.dropped_bytes == 1 and len(recs[0]["audio"]) == 8000


@pytest.mark.parametrize("call_id", ["", "x" * 129, "a/b", "ü", "a b"])
def test_invalid_call_ids(call_id):
    with pytest.raises(IngestError):
        check_call_id(call_id)


def test_valid_call_id():
    assert check_call_id("Call-7_a.b:c") == "Call-7_a.b:c"
    assert np.isfinite(len(check_call_id("x" * 128)))


def test_a_held_chunk_is_released_on_demand_without_end_of_call():
    ch = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1)
    assert ch.feed(pcm_bytes(tone(1.0))) == [] and ch.holding
    assert [(r["seq"], r["end_of_call"]) for r, _t in ch.release()] == [(0, False)]
    assert not ch.holding and ch.release() == []
    assert [(r["seq"], r["end_of_call"]) for r in ch.feed(pcm_bytes(tone(0.5))) + ch.finish(True)] == [(1, True)]


def test_an_end_after_everything_was_published_rides_on_20_ms_of_silence():
    ch = chunker(encoding="pcm_s16le", sample_rate=8000, channels=2, stereo_roles=("CUSTOMER", "AGENT"))
    assert ch.feed(pcm_bytes(tone(1.0, rate=8000, channels=2))) == [] and ch.holding
    assert [(r["role"], r["end_of_call"]) for r, _t in ch.release()] == [("CUSTOMER", False), ("AGENT", False)]
    end = ch.finish(True)
    assert [(r["role"], r["seq"], r["start_ms"], r["end_of_call"]) for r in end] == [
        ("CUSTOMER", 1, 1000, True), ("AGENT", 1, 1000, True)]
    assert all(r["audio"] == bytes(8000 * 20 // 1000 * 2) for r in end)  # 20 ms of 16-bit silence per role


def test_no_end_marker_when_the_call_goes_on():
    ch = chunker(encoding="pcm_s16le", sample_rate=16000, channels=1)
    ch.feed(pcm_bytes(tone(1.0)))
    ch.release()
    assert ch.finish(False) == []
