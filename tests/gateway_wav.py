"""WAV bytes for the gateway's tests and the `emowatch send` tests: any format tag, extra chunks, sizes."""
from __future__ import annotations

import struct

import numpy as np

from emowatch.topics.model_io import SAMPLE_RATE

GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")


def tone(seconds: float, rate: int = SAMPLE_RATE, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(n, channels) float32 in [-0.5, 0.5]: a different pseudo-random signal per channel."""
    rng = np.random.default_rng(seed)
    return (rng.random((int(round(seconds * rate)), channels), dtype=np.float32) - 0.5).astype(np.float32)


def pcm_bytes(samples: np.ndarray, encoding: str = "PCM_S16LE") -> bytes:
    if encoding == "PCM_S16LE":
        return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return samples.astype("<f4").tobytes()


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")


def fmt_chunk(tag: int, channels: int, rate: int, bits: int, *, extensible: bool = False, align: int | None = None,
              sub_guid_tail: bytes = GUID_TAIL) -> bytes:
    block = align if align is not None else channels * bits // 8
    head = struct.pack("<HHIIHH", 0xFFFE if extensible else tag, channels, rate, rate * block, block, bits)
    if extensible:
        head += struct.pack("<HHI", 22, bits, 3 if channels == 2 else 4) + struct.pack("<H", tag) + sub_guid_tail
    return chunk(b"fmt ", head)


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE, *, encoding: str = "PCM_S16LE", extensible: bool = False,
              before_data: bytes = b"", after_data: bytes = b"", data_size: int | None = None, tag: int | None = None,
              bits: int | None = None) -> bytes:
    """A WAV file of ``samples`` (n, channels); ``data_size`` overrides the data chunk's size field
    (0 or 0xFFFFFFFF: streamed); ``before_data``/``after_data`` are extra chunks (e.g. LIST)."""
    data = pcm_bytes(samples, encoding)
    tag = tag if tag is not None else (1 if encoding == "PCM_S16LE" else 3)
    bits = bits if bits is not None else (16 if encoding == "PCM_S16LE" else 32)
    size = len(data) if data_size is None else data_size
    body = (b"WAVE" + fmt_chunk(tag, samples.shape[1], rate, bits, extensible=extensible) + before_data
            + b"data" + struct.pack("<I", size) + data + (b"\0" if len(data) % 2 else b"") + after_data)
    return b"RIFF" + struct.pack("<I", len(body)) + body


LIST_CHUNK = chunk(b"LIST", b"INFOISFT" + struct.pack("<I", 5) + b"test\0")  # odd total: padded
