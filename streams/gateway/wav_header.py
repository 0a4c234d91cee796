"""Incremental WAV header parser (RIFF/WAVE): fed any byte pieces, it finds ``fmt `` and the start of ``data``. Pure.

Accepted: PCM 16-bit (format 1), IEEE float 32-bit (format 3) and WAVE_FORMAT_EXTENSIBLE (0xFFFE) with
one of those sub-formats; mono or stereo; a rate of ``streams/audio/codec.SUPPORTED_RATES``. Chunks other
than ``fmt `` and ``data`` (``LIST``, ``fact``, ``bext`` ...) are skipped without being buffered. A
``data`` size of 0 or 0xFFFFFFFF means "streamed, size unknown" (what live recorders write).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emowatch.streams.audio.codec import AudioError, check_format
from emowatch.streams.gateway.errors import ApiError

__all__ = ["IngestError", "PcmFormat", "WavHeaderParser", "pcm_format"]

UNKNOWN_SIZES = (0, 0xFFFFFFFF)
MAX_FMT_BYTES = 1024
# KSDATAFORMAT_SUBTYPE_PCM / _IEEE_FLOAT: the format tag followed by this fixed GUID tail
_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")
_TAGS = {1: ("PCM_S16LE", 16), 3: ("PCM_F32LE", 32)}
# codec.AudioError codes -> the gateway's error codes
_AUDIO_CODES = {"unknown_encoding": "unsupported_encoding", "unsupported_rate": "unsupported_rate",
                "unsupported_channels": "unsupported_channels"}


class IngestError(ApiError):
    """Audio the gateway refuses (bad header, unsupported format, limits); ``code`` and ``http_status``
    follow docs/gateway.md."""


@dataclass(frozen=True)
class PcmFormat:
    encoding: str  # AudioChunk encoding: PCM_S16LE | PCM_F32LE
    sample_rate: int
    channels: int
    data_bytes: int | None = None  # the WAV header's data size; None = unknown (streamed) or raw PCM

    @property
    def frame_bytes(self) -> int:
        return (2 if self.encoding == "PCM_S16LE" else 4) * self.channels


def pcm_format(encoding: str, sample_rate: int, channels: int, data_bytes: int | None = None) -> PcmFormat:
    """A checked :class:`PcmFormat`; :class:`IngestError` for an unknown encoding, rate or channel count."""
    try:
        check_format(encoding, sample_rate, channels)
    except AudioError as exc:
        raise IngestError(_AUDIO_CODES.get(exc.code, "bad_parameter"), exc.reason) from None
    return PcmFormat(encoding, sample_rate, channels, data_bytes)


def _bad(message: str) -> IngestError:
    return IngestError("bad_wav_header", message)


class WavHeaderParser:
    """``feed(piece)`` until it returns ``(format, first data bytes)``; ``header_bytes`` is then the
    offset of the first data byte in the file."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip = 0  # bytes of an ignored chunk still to pass
        self._riff = False
        self._fmt: tuple[str, int, int] | None = None
        self.header_bytes = 0  # bytes consumed so far (the data offset once done)
        self.done = False

    @property
    def seen(self) -> int:
        return self.header_bytes + len(self._buf)

    def feed(self, data: bytes) -> tuple[PcmFormat, bytes] | None:
        if self.done:
            raise RuntimeError("the header is complete; feed the data to the chunker")
        self._buf += data
        while True:
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                self.header_bytes += n
                if self._skip:
                    return None
            if not self._riff:
                if len(self._buf) < 12:
                    return None
                if self._buf[:4] != b"RIFF" or self._buf[8:12] != b"WAVE":
                    raise _bad(f"not a RIFF/WAVE file (starts with {bytes(self._buf[:4])!r})")
                self._consume(12)
                self._riff = True
            if len(self._buf) < 8:
                return None
            cid, size = bytes(self._buf[:4]), struct.unpack_from("<I", self._buf, 4)[0]
            if cid == b"fmt ":
                if not 16 <= size <= MAX_FMT_BYTES:
                    raise _bad(f"fmt chunk of {size} bytes")
                if len(self._buf) < 8 + size:
                    return None
                self._fmt = self._parse_fmt(bytes(self._buf[8:8 + size]))
                self._consume(8)
                self._skip = size + (size & 1)
            elif cid == b"data":
                if self._fmt is None:
                    raise _bad("data chunk before the fmt chunk")
                self._consume(8)
                self.done = True
                rest = bytes(self._buf)
                self._buf = bytearray()
                enc, rate, ch = self._fmt
                return PcmFormat(enc, rate, ch, None if size in UNKNOWN_SIZES else size), rest
            else:
                if not all(32 <= b < 127 for b in cid):
                    raise _bad(f"invalid chunk id {cid!r} at byte {self.header_bytes}")
                self._consume(8)
                self._skip = size + (size & 1)

    def finish(self) -> None:
        """The body ended; raises :class:`IngestError` unless the header was complete."""
        if self.done:
            return
        if self.seen == 0:
            raise IngestError("empty_body", "the body is empty")
        raise _bad(f"the body ended after {self.seen} bytes, before the WAV data chunk")

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self.header_bytes += n

    @staticmethod
    def _parse_fmt(b: bytes) -> tuple[str, int, int]:
        tag, channels, rate, _byte_rate, align, bits = struct.unpack_from("<HHIIHH", b)
        if tag == 0xFFFE:
            if len(b) < 40:
                raise _bad(f"WAVE_FORMAT_EXTENSIBLE fmt chunk of {len(b)} bytes (needs 40)")
            guid = b[24:40]
            if guid[2:] != _GUID_TAIL:
                raise IngestError("unsupported_encoding", "WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID")
            tag = struct.unpack_from("<H", guid)[0]
        if tag not in _TAGS or _TAGS[tag][1] != bits:
            kind = {1: "PCM", 3: "float"}.get(tag, f"format {tag}")
            raise IngestError("unsupported_encoding", f"{kind} {bits}-bit WAV; only 16-bit PCM and 32-bit float "
                                                      "are supported")
        if channels == 0:
            raise _bad("fmt chunk with 0 channels")
        enc = _TAGS[tag][0]
        fmt = pcm_format(enc, rate, channels)
        if align != fmt.frame_bytes:
            raise _bad(f"block align {align} does not match {channels} x {bits}-bit samples")
        return enc, rate, channels
