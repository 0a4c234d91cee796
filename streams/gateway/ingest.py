"""A call's audio byte stream -> AudioChunk records (topics/schemas/AudioChunk.v2.avsc). Pure, no Kafka.

:class:`StreamChunker` takes the body of an upload or the frames of a WebSocket in pieces of any size
(a WAV file, header parsed by :class:`~emowatch.streams.gateway.wav_header.WavHeaderParser`, or raw
PCM) and cuts ``chunk_ms`` chunks as soon as their bytes are there, so nothing but the current chunk is
ever held. Stereo audio becomes one mono AudioChunk stream per channel (roles from ``stereo_roles``);
mono audio gets ``role``. The source rate and encoding are kept (the inference agent resamples).

``seq`` and ``start_ms`` continue from ``start`` (the :class:`Cursors` of a call whose earlier request
ended with ``ends=false``); ``event_time`` = ``capture_start_ms`` (the request's arrival, wall clock)
+ the offset within this request. With ``lookahead`` a chunk that ends exactly where the bytes received
so far end is held (:attr:`holding`) until more bytes arrive, :meth:`finish` (so that the call's last
chunk can carry ``end_of_call``) or :meth:`release` (the live WebSocket releases it after a short grace);
without it a chunk leaves as soon as it is complete.
"""
from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Mapping

import numpy as np

from emowatch.streams.gateway.wav_header import IngestError, PcmFormat, WavHeaderParser, pcm_format
from emowatch.topics.call_ids import MAX_CALL_ID_CHARS
from emowatch.topics.model_io import FRAME_MS

__all__ = ["RAW_ENCODINGS", "Cursors", "IngestError", "StreamChunker", "check_call_id"]

#: query value of ``encoding`` -> AudioChunk encoding (``wav`` reads the format from the header)
RAW_ENCODINGS = {"pcm_s16le": "PCM_S16LE", "pcm_f32le": "PCM_F32LE"}
_CALL_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_CALL_ID_CHARS}}}")


def check_call_id(call_id: str) -> str:
    """``call_id`` if it is 1 to :data:`MAX_CALL_ID_CHARS` characters of ``[A-Za-z0-9._:-]``, else
    :class:`IngestError` invalid_call_id."""
    if not isinstance(call_id, str) or not _CALL_ID.fullmatch(call_id):
        raise IngestError("invalid_call_id", f"a call id is 1-{MAX_CALL_ID_CHARS} characters of A-Z a-z 0-9 . _ : -")
    return call_id


class StreamChunker:
    """``feed(bytes) -> [AudioChunk dict]`` then ``finish(end_of_call) -> [AudioChunk dict]``.

    ``feed_timed``/``finish_timed`` also give, per record, the ``now`` of the feed whose bytes completed
    it (the gateway measures the publish delay from there). :class:`IngestError` from the header, the
    format or a limit is raised before any record is returned, except ``too_large`` for a stream that
    outgrows ``max_call_s`` without announcing its size: then :attr:`cut` is set, the bytes past the
    limit are dropped and the caller finishes the call.
    """

    def __init__(self, call_id: str, *, capture_start_ms: int, encoding: str = "wav", sample_rate: int | None = None,
                 channels: int | None = None, role: str = "MIXED", stereo_roles: tuple[str, str] | None = None,
                 business_line: str = "default", attributes: Mapping[str, str] | None = None, chunk_ms: int = 1000,
                 start: Mapping[str, tuple[int, int]] | None = None, lookahead: bool = True,
                 max_call_s: float | None = None, expected_bytes: int | None = None) -> None:
        self.call_id = check_call_id(call_id)
        self.capture_start_ms = int(capture_start_ms)
        self.role, self.stereo_roles = role, stereo_roles
        self.business_line = business_line
        self.attributes = dict(attributes or {})
        self.chunk_ms, self.lookahead, self.max_call_s = chunk_ms, lookahead, max_call_s
        self.expected_bytes = expected_bytes
        self._start = dict(start or {})
        self._wav: WavHeaderParser | None = None
        self.format: PcmFormat | None = None
        if encoding == "wav":
            self._wav = WavHeaderParser()
        elif encoding in RAW_ENCODINGS:
            if sample_rate is None or channels is None:
                raise IngestError("bad_parameter", f"encoding={encoding} needs sample_rate and channels")
            self._set_format(pcm_format(RAW_ENCODINGS[encoding], sample_rate, channels), header_bytes=0)
        else:
            raise IngestError("unsupported_encoding", f"encoding {encoding!r} is not one of wav, "
                                                      f"{', '.join(RAW_ENCODINGS)}")
        self._buf = bytearray()
        self._frames_done = 0  # frames (sample instants) of this request already cut
        self._pos = 0  # data bytes received (after the header, up to the data size)
        self._cut_pos = 0  # data bytes cut into records
        self._feeds: deque[tuple[int, float]] = deque()  # (data bytes received after a feed, its time)
        self._seq_done = 0
        self.received = 0  # body bytes seen
        self.dropped_bytes = 0  # a trailing partial frame (not a whole number of frames), dropped at finish
        self.cut = False

    # ---- format ----------------------------------------------------------------------------------
    def _set_format(self, fmt: PcmFormat, header_bytes: int) -> None:
        self.format = fmt
        self._frame_bytes = fmt.frame_bytes
        self._chunk_frames = max(1, fmt.sample_rate * self.chunk_ms // 1000)
        self._dtype = np.dtype("<i2") if fmt.encoding == "PCM_S16LE" else np.dtype("<f4")
        self._data_left: int | None = fmt.data_bytes
        if self.expected_bytes is not None:  # the whole body's size is known: check it before anything is cut
            body_data = max(0, self.expected_bytes - header_bytes)
            data = body_data if fmt.data_bytes is None else min(fmt.data_bytes, body_data)
            self._data_left = data
            if data == 0:
                raise IngestError("empty_body", "no audio after the header")
            if data % self._frame_bytes:
                raise IngestError("truncated", f"{data} audio bytes is not a whole number of "
                                               f"{self._frame_bytes}-byte frames")
        elif fmt.data_bytes is not None and fmt.data_bytes % self._frame_bytes:
            raise IngestError("truncated", f"the header's data size {fmt.data_bytes} is not a whole number of "
                                           f"{self._frame_bytes}-byte frames")
        if self.max_call_s is not None:  # the header's duration or the body's, whichever is known and longer
            announced = max(n for n in (fmt.data_bytes, self._data_left, 0) if n is not None)
            seconds = self._base_ms() / 1000 + announced / self._frame_bytes / fmt.sample_rate
            if seconds > self.max_call_s:
                raise IngestError("too_large", f"the call would last {seconds:.0f} s, over the limit of "
                                               f"{self.max_call_s:g} s")

    @property
    def roles(self) -> list[str]:
        if self.format is not None and self.format.channels == 2 and self.stereo_roles is not None:
            return list(self.stereo_roles)
        return [self.role]

    def _base_ms(self) -> int:
        return max((ms for _seq, ms in self._start.values()), default=0)

    @property
    def buffered_bytes(self) -> int:
        """Bytes held right now (header remainder + the current chunk); bounded by a chunk plus one piece."""
        return len(self._buf) + (len(self._wav._buf) if self._wav is not None and not self._wav.done else 0)

    @property
    def duration_ms(self) -> int:
        """Audio cut so far in this request."""
        return 0 if self.format is None else self._frames_done * 1000 // self.format.sample_rate

    # ---- feeding ---------------------------------------------------------------------------------
    def feed(self, data: bytes) -> list[dict]:
        return [r for r, _t in self.feed_timed(data)]

    def finish(self, end_of_call: bool) -> list[dict]:
        return [r for r, _t in self.finish_timed(end_of_call)]

    def feed_timed(self, data: bytes, now: float = 0.0) -> list[tuple[dict, float]]:
        self.received += len(data)
        if self.cut or not data:
            return []
        if self.format is None:
            assert self._wav is not None
            got = self._wav.feed(data)
            if got is None:
                return []
            fmt, data = got
            self._set_format(fmt, self._wav.header_bytes)
        if self._data_left is not None:
            if len(data) > self._data_left:
                data = data[:self._data_left]  # bytes after the data chunk (trailing chunks) are not audio
            self._data_left -= len(data)
        data = self._within_limit(data)
        if not data:
            return []
        self._buf += data
        self._pos += len(data)
        self._feeds.append((self._pos, now))
        out = []
        chunk_bytes = self._chunk_frames * self._frame_bytes
        while len(self._buf) > chunk_bytes or (len(self._buf) == chunk_bytes and not self.lookahead
                                                and self._data_left != 0):
            out += self._emit(bytes(self._buf[:chunk_bytes]), end=False)
            del self._buf[:chunk_bytes]
        return out

    @property
    def holding(self) -> bool:
        """A complete chunk is held back (lookahead) waiting for more bytes or the end."""
        return self.format is not None and len(self._buf) == self._chunk_frames * self._frame_bytes

    def release(self) -> list[tuple[dict, float]]:
        """The held chunk, if any, without ``end_of_call`` (no more bytes came in time)."""
        if not self.holding:
            return []
        data = bytes(self._buf)
        self._buf.clear()
        return self._emit(data, end=False)

    def _within_limit(self, data: bytes) -> bytes:
        if self.max_call_s is None or self.format is None:
            return data
        limit = int(max(0.0, self.max_call_s - self._base_ms() / 1000) * self.format.sample_rate) * self._frame_bytes
        if self._pos + len(data) > limit:
            self.cut = True
            return data[:max(0, limit - self._pos)]
        return data

    def finish_timed(self, end_of_call: bool, now: float = 0.0) -> list[tuple[dict, float]]:
        """The rest as a last (shorter) chunk, ``end_of_call`` on it; :class:`IngestError` if no audio came."""
        if self.format is None:
            assert self._wav is not None
            self._wav.finish()
        if self._pos == 0:
            raise IngestError("empty_body", "no audio in the body")
        tail = len(self._buf) % self._frame_bytes
        if tail:
            self.dropped_bytes = tail
            del self._buf[-tail:]
        if not self._buf:
            if not end_of_call or self._seq_done == 0:
                return []
            # Everything was published already (a live end that came after the last chunk left): the end is
            # carried by one model frame (20 ms) of silence, so the pipeline still sees the call's end.
            silence = self.format.sample_rate * FRAME_MS // 1000 * self._frame_bytes
            return self._emit(bytes(silence), end=True)
        data = bytes(self._buf)
        self._buf.clear()
        return self._emit(data, end=end_of_call)

    # ---- records ---------------------------------------------------------------------------------
    def _emit(self, data: bytes, *, end: bool) -> list[tuple[dict, float]]:
        fmt = self.format
        assert fmt is not None
        frames = len(data) // self._frame_bytes
        first = self._frames_done
        self._frames_done += frames
        offset_ms = first * 1000 // fmt.sample_rate
        self._cut_pos += len(data)
        done_at = self._completed_at(self._cut_pos)
        roles = self.roles
        if len(roles) == 2:
            samples = np.frombuffer(data, dtype=self._dtype).reshape(frames, 2)
            parts = [np.ascontiguousarray(samples[:, c]).tobytes() for c in range(2)]
            channels = 1
        else:
            parts, channels = [data], fmt.channels
        out = []
        for role, audio in zip(roles, parts):
            seq0, ms0 = self._start.get(role, (0, 0))
            out.append(({
                "call_id": self.call_id, "role": role, "seq": seq0 + self._seq_done, "start_ms": ms0 + offset_ms,
                "event_time": self.capture_start_ms + offset_ms, "sample_rate": fmt.sample_rate,
                "encoding": fmt.encoding, "channels": channels, "audio": audio, "business_line": self.business_line,
                "end_of_call": end, "attributes": dict(self.attributes), "trace_id": None,
            }, done_at))
        self._seq_done += 1
        return out

    def _completed_at(self, end_pos: int) -> float:
        """The time of the feed that brought byte ``end_pos`` (older feed records are dropped)."""
        while len(self._feeds) > 1 and self._feeds[0][0] < end_pos:
            self._feeds.popleft()
        return self._feeds[0][1] if self._feeds else 0.0

    def cursor(self) -> dict[str, tuple[int, int]]:
        """``{role: (next seq, next start_ms)}`` after the records returned so far (for ``ends=false``)."""
        rate = self.format.sample_rate if self.format else 1
        out = dict(self._start)
        for role in self.roles:
            seq0, ms0 = self._start.get(role, (0, 0))
            out[role] = (seq0 + self._seq_done, ms0 + self._frames_done * 1000 // rate)
        return out


class Cursors:
    """Where each open call continues (``{role: (next seq, next start_ms)}``), least recently used
    dropped beyond ``max_calls``."""

    def __init__(self, max_calls: int = 100_000) -> None:
        self.max_calls = max_calls
        self._calls: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()

    def get(self, call_id: str) -> dict[str, tuple[int, int]]:
        return dict(self._calls.get(call_id, {}))

    def set(self, call_id: str, cursor: Mapping[str, tuple[int, int]]) -> None:
        self._calls[call_id] = dict(cursor)
        self._calls.move_to_end(call_id)
        while len(self._calls) > self.max_calls:
            self._calls.popitem(last=False)

    def drop(self, call_id: str) -> None:
        self._calls.pop(call_id, None)

    def __len__(self) -> int:
        return len(self._calls)
