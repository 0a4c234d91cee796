"""Fuzzed gateway requests for the bad-input campaign (issue #17): HTTP headers and query parameters, WAV
headers and raw PCM bodies for ``POST /v1/calls/{id}/audio``, and WebSocket sessions for
``WS /v1/calls/{id}/stream``. Every case is one the gateway must refuse before publishing anything
(docs/gateway.md: 4xx, or an error message and close 1003/1008), but audio sent after a stream's end (its
call's chunks before the end are published). Deterministic for a seed."""
from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

from badinput.generate import pcm, wav_header

TOKEN = "badinput-s3cret"
GOOD = {"Authorization": f"Bearer {TOKEN}"}
RAW = {"encoding": "pcm_s16le", "sample_rate": "16000", "channels": "1"}


@dataclass
class HttpCase:
    category: str
    call_id: str
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=lambda: dict(GOOD))


@dataclass
class WsCase:
    category: str
    call_id: str
    query: dict[str, str]
    frames: list[bytes | str]  # sent in order after the connection is accepted
    publishes: int = 0  # AudioChunks published before the refusal (audio after the end: the call's last chunk)


def _wav(rng: random.Random, **over) -> bytes:
    """A WAV header (plus 0.2 s of data) with some fields set to what the gateway must refuse."""
    data = pcm(0.2)
    return wav_header(data_size=len(data), **over) + data


def _wav_chunks(body_before_fmt: bytes) -> bytes:
    data = pcm(0.2)
    fmt = b"fmt " + struct.pack("<I", 16) + struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16)
    body = b"WAVE" + body_before_fmt + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


BAD_WAVS = [
    ("wav_random_bytes", lambda r: bytes(r.getrandbits(8) for _ in range(r.randint(1, 2000)))),
    ("wav_truncated_header", lambda r: _wav(r)[:r.randint(1, 43)]),
    ("wav_riff_not_wave", lambda r: b"RIFF" + struct.pack("<I", 100) + b"AVI " + bytes(100)),
    ("wav_zero_channels", lambda r: _wav(r, channels=0, align=2)),
    ("wav_odd_bits", lambda r: _wav(r, bits=r.choice([8, 12, 24, 64]))),
    ("wav_unknown_format_tag", lambda r: _wav(r, tag=r.choice([0, 2, 0x55, 0x2000]))),
    ("wav_block_align_mismatch", lambda r: _wav(r, align=r.choice([1, 3, 7]))),
    ("wav_short_fmt_chunk", lambda r: _wav(r, fmt_size=r.choice([2, 8, 14]))),
    ("wav_data_before_fmt", lambda r: _wav_chunks(b"data" + struct.pack("<I", 4) + b"\0\0\0\0")),
    ("wav_bad_chunk_id", lambda r: _wav_chunks(b"\x01\x02\xff\x00" + struct.pack("<I", 4) + b"abcd")),
    ("wav_unsupported_rate", lambda r: _wav(r, rate=r.choice([1, 12345, 384000]))),
    ("wav_too_many_channels", lambda r: _wav(r, channels=r.choice([3, 8]), bits=16)),
]


def _http_cases(rng: random.Random, name: str) -> list[HttpCase]:
    body = _wav(rng)
    return [
        HttpCase("header_no_token", name, body, headers={}),
        HttpCase("header_wrong_token", name, body, headers={"Authorization": rng.choice(
            ["Bearer nope", "Basic YWRtaW46YWRtaW4=", "Bearer", "bearer x", f"Bearer {TOKEN}x", "Token " + TOKEN])}),
        HttpCase("query_blank_attribute", name, body, params={"attr.tier": rng.choice([" ", ""])}),
        HttpCase("header_long_attribute", name, body, headers={**GOOD, "X-Emowatch-Attr-Tier": "g" * 5000}),
        HttpCase("header_long_business_line", name, body,
                 headers={**GOOD, "X-Emowatch-Business-Line": "b" * 5000}),
        HttpCase("query_unknown_encoding", name, pcm(0.2), params={**RAW, "encoding": rng.choice(
            ["mp3", "opus", "PCM_U8", "", "pcm_s24le"])}),
        HttpCase("query_bad_sample_rate", name, pcm(0.2), params={**RAW, "sample_rate": rng.choice(
            ["abc", "0", "-16000", "12345", "1e9", "16000.5"])}),
        HttpCase("query_bad_channels", name, pcm(0.2), params={**RAW, "channels": rng.choice(["0", "3", "-1", "two"])}),
        HttpCase("query_bad_role", name, pcm(0.2), params={**RAW, "role": rng.choice(["boss", "", "CUSTOMER2"])}),
        HttpCase("query_bad_bool", name, pcm(0.2), params={**RAW, "ends": rng.choice(["maybe", "2", "yes please"])}),
        HttpCase("query_attr_without_name", name, pcm(0.2), params={**RAW, "attr.": "x"}),
        HttpCase("invalid_call_id", rng.choice(["a b", "caf\u00e9", "x" * 129, "semi;colon", "tab\tid"]), body),
        HttpCase("raw_odd_byte_count", name, pcm(0.2)[:-1], params=dict(RAW)),
        HttpCase("raw_empty_body", name, b"", params=dict(RAW)),
        HttpCase("f32_odd_byte_count", name, bytes(4 * 3200 + rng.randint(1, 3)),
                 params={**RAW, "encoding": "pcm_f32le"}),
        *(HttpCase(cat, name, build(rng)) for cat, build in BAD_WAVS),
    ]


def _ws_cases(rng: random.Random, name: str) -> list[WsCase]:
    raw = dict(RAW, access_token=TOKEN)
    return [
        WsCase("ws_no_token", name, dict(RAW), [pcm(0.1)]),
        WsCase("ws_bad_parameters", name, dict(raw, sample_rate=rng.choice(["x", "0", "12345"])), [pcm(0.1)]),
        WsCase("ws_invalid_call_id", "bad call id", raw, [pcm(0.1)]),
        WsCase("ws_text_not_end", name, raw, [pcm(0.1), rng.choice(["hello", '{"type": "pause"}', "[1, 2]", "{"])]),
        WsCase("ws_audio_after_end", name, raw, [pcm(0.1), '{"type": "end"}', pcm(0.1)], publishes=1),
        WsCase("ws_bad_wav_header", name, {"access_token": TOKEN, "encoding": "wav"},
               [bytes(rng.getrandbits(8) for _ in range(64))]),
    ]


def gateway_cases(n: int, seed: int) -> list[HttpCase | WsCase]:
    """``n`` requests: every category once, then random picks; call ids are unique per case."""
    rng = random.Random(seed)
    out: list[HttpCase | WsCase] = []
    while len(out) < n:
        name = f"gw-bad-{seed}-{len(out):05d}"
        batch = _http_cases(rng, name) + _ws_cases(rng, name)
        pick = batch if not out else [rng.choice(batch)]
        for case in pick:
            if case.call_id == name:
                case.call_id = f"{name}-{len(out)}"
            out.append(case)
    return out[:n]
