"""Per-frame voice activity and level of a scored chunk: FrameScores ``speech``, ``energy_db`` and ``vad``. No Kafka.

Frame ``i`` of a chunk is its audio ``[i * 320, (i + 1) * 320)`` samples, i.e. call time
``[start_ms + 20 i, start_ms + 20 (i + 1))`` ms; a chunk of ``emit_samples`` samples has
``emit_samples // 320`` frames, exactly the rows of the engine's logits (a trailing part frame has none).

* ``energy_db[i]``: RMS level of frame ``i`` in dB relative to full scale (``20 log10(rms)`` of the
  samples as floats in [-1, 1]: a full-scale square wave is 0 dB, a full-scale sine -3.01 dB), floored
  at :data:`ENERGY_FLOOR_DB` (digital silence). Computed whatever the VAD setting.
* ``speech[i]``: probability in [0, 1] that frame ``i`` is speech.

  - ``silero`` (default): silero-vad's 16 kHz network (:mod:`emowatch.streams.infer.silero`), run from a
    fresh state over a *stream* = the last ``context_ms`` of the chunk's left context (zeros where the
    call has less, e.g. at its start or after a gap) + the chunk, cut into 512-sample windows (32 ms)
    **ending at the chunk's last sample** (the stream starts up to 511 samples further back, taken from
    the context too). ``speech[i]`` is the probability of the window that holds frame ``i``'s centre
    sample (``320 i + 160``).
  - ``webrtc``: webrtcvad (``mode`` 0-3, 3 the most aggressive at calling audio non-speech), a fresh
    detector fed the context's last ``context_ms`` in 20 ms frames (on the chunk's frame grid), then the
    chunk's frames: 1.0 speech, 0.0 not. The samples are the 16-bit values the chunk was decoded from.
  - ``off``: ``speech`` and ``vad`` are null.

Deterministic: the values depend only on the chunk's samples, its left context and the settings, never on
the other chunks batched with it or the order chunks arrive in (silero runs in fixed-shape blocks, bit
for bit; webrtcvad gets a new detector per chunk). Different *available* context (start of the call, a
gap, a new owner after a rebalance) gives different warm-up audio, as it does for the emotion logits.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Protocol

import numpy as np

from emowatch.topics.errors import EmowatchError
from emowatch.topics.model_io import SAMPLE_RATE, SAMPLES_PER_FRAME

__all__ = ["ENERGY_FLOOR_DB", "VAD_KINDS", "Activity", "FrameActivity", "VadError", "frame_energy_db",
           "make_frame_activity"]

log = logging.getLogger("emowatch.infer.vad")

ENERGY_FLOOR_DB = -100.0
"""``energy_db`` of a digitally silent frame (and the floor of every frame)."""
VAD_KINDS = ("silero", "webrtc", "off")
"""Values of ``EMOWATCH_INFER__VAD``."""
_PCM_SCALE = 32768.0  # the audio codec's int16 -> float divisor


class VadError(EmowatchError):
    """The configured voice activity detector cannot be used (EMOWATCH_INFER__VAD)."""


@dataclass(frozen=True)
class Activity:
    """What one chunk gets in its FrameScores: ``speech`` (None without a VAD), ``energy_db``, ``vad``."""

    speech: np.ndarray | None
    energy_db: np.ndarray
    vad: str | None


class Detector(Protocol):
    name: str

    def speech(self, items: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        """``(window = left context + chunk, emit_samples)`` per chunk -> float32 ``(emit_samples // 320,)``."""
        ...  # pragma: no cover


def frame_energy_db(chunk: np.ndarray, n_frames: int) -> np.ndarray:
    """RMS level in dBFS of each of the first ``n_frames`` 20 ms frames of ``chunk``, floored (float32)."""
    frames = np.asarray(chunk[: n_frames * SAMPLES_PER_FRAME], dtype=np.float64).reshape(n_frames,
                                                                                         SAMPLES_PER_FRAME)
    power = np.einsum("ij,ij->i", frames, frames) / SAMPLES_PER_FRAME
    with np.errstate(divide="ignore"):
        level = 10.0 * np.log10(power)
    return np.maximum(np.nan_to_num(level, nan=ENERGY_FLOOR_DB, neginf=ENERGY_FLOOR_DB),
                      ENERGY_FLOOR_DB).astype(np.float32)


def _split(window: np.ndarray, emit_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """(left context, chunk) of a window."""
    cut = len(window) - int(emit_samples)
    return window[:cut], window[cut:]


class SileroDetector:
    """silero-vad over (context + chunk) streams, batched by stream length (see the module docstring)."""

    def __init__(self, context_ms: int) -> None:
        from emowatch.streams.infer.silero import WINDOW, SileroError, SileroVad

        try:
            self.model = SileroVad()
        except SileroError as exc:
            raise VadError(f"EMOWATCH_INFER__VAD=silero: {exc}") from exc
        self.window = WINDOW
        self.context = int(context_ms) * SAMPLE_RATE // 1000
        self.name = f"silero-vad {self.model.version} context {int(context_ms)} ms"

    def speech(self, items: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(items)
        by_length: dict[int, list[int]] = {}
        for k, (_window, emit) in enumerate(items):
            if emit // SAMPLES_PER_FRAME:
                by_length.setdefault(-(-(self.context + emit) // self.window), []).append(k)
        for t, members in by_length.items():
            length = t * self.window
            streams = np.zeros((len(members), length), np.float32)
            for row, k in enumerate(members):
                ctx, chunk = _split(*items[k])
                tail = np.concatenate([ctx[max(0, len(ctx) - (length - len(chunk))):], chunk])
                streams[row, length - len(tail):] = tail
            probs = self.model.probabilities(streams)
            for row, k in enumerate(members):
                emit = items[k][1]
                centres = (length - emit) + np.arange(emit // SAMPLES_PER_FRAME) * SAMPLES_PER_FRAME \
                    + SAMPLES_PER_FRAME // 2
                out[k] = probs[row, centres // self.window]
        return out


class WebrtcDetector:
    """webrtcvad, a fresh detector per chunk warmed on its context (see the module docstring)."""

    def __init__(self, mode: int, context_ms: int) -> None:
        try:
            import webrtcvad

            version = metadata.version("webrtcvad-wheels")
        except (ImportError, metadata.PackageNotFoundError) as exc:
            raise VadError("EMOWATCH_INFER__VAD=webrtc needs webrtcvad-wheels (pip install webrtcvad-wheels)") from exc
        self._new = lambda: webrtcvad.Vad(int(mode))
        self.context_frames = -(-int(context_ms) * SAMPLE_RATE // 1000 // SAMPLES_PER_FRAME)
        self.name = f"webrtcvad {version} mode {int(mode)} context {int(context_ms)} ms"

    def speech(self, items: Sequence[tuple[np.ndarray, int]]) -> list[np.ndarray]:
        return [self._one(*item) for item in items]

    def _one(self, window: np.ndarray, emit_samples: int) -> np.ndarray:
        ctx, chunk = _split(window, emit_samples)
        n = len(chunk) // SAMPLES_PER_FRAME
        warm = min(len(ctx) // SAMPLES_PER_FRAME, self.context_frames) * SAMPLES_PER_FRAME
        audio = np.concatenate([ctx[len(ctx) - warm:], chunk[: n * SAMPLES_PER_FRAME]])
        pcm = np.clip(np.round(np.nan_to_num(audio) * _PCM_SCALE), -32768, 32767).astype("<i2").tobytes()
        step = 2 * SAMPLES_PER_FRAME
        vad = self._new()
        flags = [vad.is_speech(pcm[i:i + step], SAMPLE_RATE) for i in range(0, len(pcm), step)]
        return np.asarray(flags[warm // SAMPLES_PER_FRAME:], dtype=np.float32)


class FrameActivity:
    """Computes each chunk's :class:`Activity` for a batch (on the agent's model thread)."""

    def __init__(self, detector: Detector | None) -> None:
        self.detector = detector
        self.name = None if detector is None else detector.name
        self.failures = 0
        self.seconds = 0.0  # wall time spent in annotate (the model thread's, one torch thread: ~its CPU time)

    def annotate(self, items: Sequence[tuple[np.ndarray, int]]) -> list[Activity]:
        """``(window, emit_samples)`` per chunk -> its Activity. A failing detector leaves ``speech`` null
        (logged, counted in :attr:`failures`) rather than failing the chunks' scores."""
        t0 = time.perf_counter()
        speech: list[np.ndarray | None] = [None] * len(items)
        if self.detector is not None and items:
            try:
                speech = list(self.detector.speech(items))
            except Exception:  # noqa: BLE001 - the emotion scores still go out, without voice activity
                self.failures += 1
                log.exception("voice activity detection failed for a batch of %d chunks", len(items))
        out = []
        for (window, emit), sp in zip(items, speech):
            n = int(emit) // SAMPLES_PER_FRAME
            energy = frame_energy_db(window[len(window) - int(emit):], n)
            out.append(Activity(sp, energy, self.name if sp is not None else None))
        self.seconds += time.perf_counter() - t0
        return out


def make_frame_activity(kind: str, *, context_ms: int, webrtc_mode: int = 2, max_context_s: float | None = None
                        ) -> FrameActivity:
    """The agent's FrameActivity for ``EMOWATCH_INFER__VAD`` = ``kind`` (VadError if it cannot be loaded).

    ``context_ms`` is capped at ``max_context_s`` (the agent's ``context_s``: no more context exists)."""
    if kind not in VAD_KINDS:
        raise VadError(f"EMOWATCH_INFER__VAD must be one of {VAD_KINDS}, got {kind!r}")
    if max_context_s is not None:
        context_ms = min(int(context_ms), int(round(max_context_s * 1000)))
    if kind == "silero":
        return FrameActivity(SileroDetector(context_ms))
    if kind == "webrtc":
        return FrameActivity(WebrtcDetector(webrtc_mode, context_ms))
    return FrameActivity(None)
