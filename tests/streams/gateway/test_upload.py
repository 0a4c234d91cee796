"""POST /v1/calls/{id}/audio against the real broker: what lands on the audio topic, streaming, refusals."""
from __future__ import annotations

import tracemalloc

import httpx
import pytest
from gateway_wav import fmt_chunk, pcm_bytes, tone, wav_bytes

from emowatch.streams.gateway.ingest import StreamChunker

pytestmark = pytest.mark.integration


def post(gw, call_id: str, body, *, params=None, headers=None, token: str | None = None) -> httpx.Response:
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{gw.url}/v1/calls/{call_id}/audio", content=body, params=params, headers=headers, timeout=120)


def offline(data: bytes, call_id: str, **kw) -> list[dict]:
    ch = StreamChunker(call_id, capture_start_ms=0, **kw)
    return ch.feed(data) + ch.finish(True)


def comparable(recs: list[dict]) -> list[tuple]:
    return sorted((r["role"], r["seq"], r["start_ms"], r["end_of_call"], r["sample_rate"], r["encoding"],
                   r["channels"], r["audio"]) for r in recs)


def test_mono_wav_lands_on_the_audio_topic(gateway, read_audio):
    data = wav_bytes(tone(3.5, rate=8000), 8000)
    res = post(gateway, "call-mono", data, params={"business_line": "vip", "attr.agent_id": "A7"},
               headers={"Content-Type": "audio/wav", "X-Emowatch-Attr-Tier": "gold"})
    assert res.status_code == 200, res.text
    assert res.json() == {"call_id": "call-mono", "chunks_published": 4, "duration_ms": 3500, "roles": ["MIXED"],
                          "business_line": "vip", "console_url": "/console/call.html?id=call-mono"}
    recs = read_audio(4)
    assert comparable(recs) == comparable(offline(data, "call-mono"))
    assert {r["business_line"] for r in recs} == {"vip"}
    assert recs[0]["attributes"] == {"agent_id": "A7", "tier": "gold"}
    starts = {r["seq"]: r["event_time"] - r["start_ms"] for r in recs}
    assert len(set(starts.values())) == 1  # event_time = capture start + start_ms


def test_stereo_wav_is_split_into_roles(gateway, read_audio):
    data = wav_bytes(tone(2.2, channels=2, seed=4), encoding="PCM_F32LE", extensible=True)
    res = post(gateway, "call-stereo", data)
    assert res.status_code == 200 and res.json()["roles"] == ["CUSTOMER", "AGENT"], res.text
    recs = read_audio(6)
    assert comparable(recs) == comparable(offline(data, "call-stereo", stereo_roles=("CUSTOMER", "AGENT")))
    assert {r["channels"] for r in recs} == {1}


@pytest.mark.parametrize("encoding", ["pcm_s16le", "pcm_f32le"])
def test_raw_pcm_and_a_call_continued_over_two_requests(gateway, read_audio, encoding):
    enc = encoding.upper()
    first, second = pcm_bytes(tone(1.5, rate=16000, seed=1), enc), pcm_bytes(tone(1.0, rate=16000, seed=2), enc)
    params = {"encoding": encoding, "sample_rate": "16000", "channels": "1", "role": "customer"}
    assert post(gateway, "call-raw", first, params={**params, "ends": "false"}).json()["chunks_published"] == 2
    assert post(gateway, "call-raw", second, params=params).json()["chunks_published"] == 1
    recs = sorted(read_audio(3), key=lambda r: r["seq"])
    assert [(r["seq"], r["start_ms"], r["end_of_call"], r["role"]) for r in recs] == [
        (0, 0, False, "CUSTOMER"), (1, 1000, False, "CUSTOMER"), (2, 1500, True, "CUSTOMER")]
    assert b"".join(r["audio"] for r in recs) == first + second and {r["encoding"] for r in recs} == {enc}


def test_a_30_minute_upload_is_streamed_not_held(gateway, audio_ends):
    rate, minutes = 8000, 30
    piece = pcm_bytes(tone(4.0, rate=rate, seed=5))  # 64 000 bytes
    pieces = minutes * 60 // 4
    total = len(piece) * pieces
    before = audio_ends()

    def body():
        for _ in range(pieces):
            yield piece

    tracemalloc.start()
    try:
        res = post(gateway, "call-long", body(), params={"encoding": "pcm_s16le", "sample_rate": str(rate),
                                                         "channels": "1"}, headers={"Content-Length": str(total)})
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.status_code == 200, res.text
    assert res.json()["chunks_published"] == minutes * 60 and res.json()["duration_ms"] == minutes * 60_000
    assert audio_ends() - before == minutes * 60
    # client and gateway share this process: everything Python allocated at once stayed far below the body
    assert peak < total / 4, f"peak {peak / 1e6:.1f} MB for a {total / 1e6:.1f} MB body"


def _wav_fmt(tag: int, channels: int, rate: int, bits: int) -> bytes:
    body = b"WAVE" + fmt_chunk(tag, channels, rate, bits) + b"data" + (64).to_bytes(4, "little") + bytes(64)
    return b"RIFF" + len(body).to_bytes(4, "little") + body


REFUSALS = [
    # (call id, body, params, headers, status, code)
    ("c1", b"ID3\x04" + bytes(200), {}, {}, 400, "bad_wav_header"),
    ("c2", _wav_fmt(1, 1, 16000, 24), {}, {}, 415, "unsupported_encoding"),
    ("c3", b"\0\0" * 100, {"encoding": "mulaw", "sample_rate": "8000", "channels": "1"}, {}, 415,
     "unsupported_encoding"),
    ("c4", _wav_fmt(1, 1, 12000, 16), {}, {}, 422, "unsupported_rate"),
    ("c5", b"\0\0" * 100, {"encoding": "pcm_s16le", "sample_rate": "7000", "channels": "1"}, {}, 422,
     "unsupported_rate"),
    ("c6", _wav_fmt(1, 4, 16000, 16), {}, {}, 422, "unsupported_channels"),
    ("c7", b"", {}, {}, 422, "empty_body"),
    ("c8", b"\0" * 101, {"encoding": "pcm_s16le", "sample_rate": "8000", "channels": "1"}, {}, 422, "truncated"),
    ("c9", b"\0" * 100, {"encoding": "pcm_s16le", "channels": "1"}, {}, 400, "bad_parameter"),
    ("c10", wav_bytes(tone(0.5)), {"role": "BOSS"}, {}, 400, "bad_parameter"),
    ("c11", wav_bytes(tone(0.5)), {"ends": "maybe"}, {}, 400, "bad_parameter"),
    ("bad id!", wav_bytes(tone(0.5)), {}, {}, 400, "invalid_call_id"),
    ("x" * 129, wav_bytes(tone(0.5)), {}, {}, 400, "invalid_call_id"),
    ("c12", wav_bytes(tone(0.5), data_size=16000 * 2 * 3 * 3600), {}, {}, 413, "too_large"),  # header: 3 h
    ("c13", bytes(2 * 1024 * 1024 + 2), {"encoding": "pcm_s16le", "sample_rate": "16000", "channels": "1"}, {},
     413, "too_large"),
]


def test_every_refusal_publishes_nothing(start_gateway, audio_ends):
    gw = start_gateway(max_upload_mb=2, max_call_s=7200)
    before = audio_ends()
    for call_id, body, params, headers, status, code in REFUSALS:
        res = post(gw, call_id, body, params=params, headers=headers)
        assert (res.status_code, res.json().get("error", {}).get("code")) == (status, code), (call_id, res.text)
        assert res.json()["error"]["message"]
    assert audio_ends() == before
    assert post(gw, "c-ok", wav_bytes(tone(0.5))).status_code == 200  # the same gateway does publish
    assert audio_ends() == before + 1


def test_bad_auth_is_refused_and_publishes_nothing(start_gateway, audio_ends):
    gw = start_gateway(auth_token="s3cret")
    before = audio_ends()
    for token in (None, "wrong"):
        res = post(gw, "c-auth", wav_bytes(tone(0.5)), token=token)
        assert res.status_code == 401 and res.json()["error"]["code"] == "unauthorized"
    res = httpx.post(f"{gw.url}/v1/calls/c-auth/audio?access_token=s3cret", content=wav_bytes(tone(0.5)))
    assert res.status_code == 401  # the query token is for WebSocket and SSE only
    assert audio_ends() == before
    assert post(gw, "c-auth", wav_bytes(tone(0.5)), token="s3cret").status_code == 200
    assert audio_ends() == before + 1


def test_an_unannounced_body_past_the_limit_is_cut_with_end_of_call(start_gateway, read_audio):
    gw = start_gateway(max_call_s=2.5)

    def body():
        for _ in range(4):
            yield pcm_bytes(tone(1.0, rate=8000))

    res = post(gw, "c-cut", body(), params={"encoding": "pcm_s16le", "sample_rate": "8000", "channels": "1"})
    assert res.status_code == 413 and res.json()["error"]["code"] == "too_large"
    recs = sorted(read_audio(3), key=lambda r: r["seq"])
    assert [(r["seq"], r["end_of_call"]) for r in recs] == [(0, False), (1, False), (2, True)]
    assert len(recs[2]["audio"]) == 8000  # half a second: cut at 2.5 s
