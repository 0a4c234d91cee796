"""Whole-file analysis for the upload page: the model's own answer for a recording.

``Analyzer.analyze(samples, rate, ...)`` scores each channel of a file as one utterance with
:func:`emowatch.models.utterance.score_files` (FunASR's ``AutoModel.generate`` on the whole
waveform, within 1e-4; not the stream's framing, docs/model.md "Whole files vs streamed windows"),
and draws the timeline, segments and summary line with :mod:`emowatch.models.timeline` from the
file's frame logits, exactly as the history API draws a stored call.

Limits: files over ``max_seconds`` (default 30 min) are refused (``too_long``); files over 60 s are
scored in 60 s segments on the file's frame grid (each segment is FunASR's answer for that
segment, the file's probabilities are the softmax of the mean of all frame logits). Analyses run
one at a time per Analyzer (a 30 min stereo file holds the CPU for a while: call it from a worker
thread, not from an event loop). No Kafka here.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from emowatch.models.engine import MIN_SAMPLES, Engine, ItemError, Result
from emowatch.models.loader import EmotionModel, load_model
from emowatch.models.timeline import DEFAULT_STEP_MS, EMOJI, Segment, segments, step_probs, summary, top_of
from emowatch.models.utterance import DEFAULT_SEGMENT_S, score_files
from emowatch.streams.audio.codec import SUPPORTED_RATES, resample
from emowatch.streams.settings import ModelSettings
from emowatch.topics.errors import EmowatchError
from emowatch.topics.model_io import FRAME_MS, SAMPLE_RATE

__all__ = ["AnalysisError", "AnalysisResult", "Analyzer", "GRANULARITIES", "MAX_ANALYSIS_S"]

log = logging.getLogger("emowatch.gateway.analyze")

MAX_ANALYSIS_S = 30 * 60.0  #: longest file analysed (per channel); longer uploads are only streamed
GRANULARITIES = ("utterance", "frame")
_DIGITS = 6  # probabilities in the JSON body (FunASR agreement is 1e-4)


class AnalysisError(EmowatchError, ValueError):
    """A file that cannot be analysed. ``code``: ``too_short``, ``too_long``, ``non_finite``,
    ``bad_audio`` (not (n, channels) float samples), ``unsupported_rate``, ``unsupported_channels``
    (HTTP 422), ``bad_parameter`` (granularity, roles; HTTP 400): ``status`` says which."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass
class AnalysisResult:
    """``body``: the ``POST /v1/analyze`` JSON minus the fields the route adds (``call_id``,
    ``published_chunks``, ``console_url``, ``embedding_url``).

    ``embedding`` (float32, None unless asked for): mono ``(dim,)`` for ``utterance``,
    ``(n_frames, dim)`` for ``frame``; stereo stacks the channels first: ``(channels, dim)`` or
    ``(channels, n_frames, dim)``, in the order of ``body["channels"]``."""

    body: dict
    embedding: np.ndarray | None = None


def _r(x: np.ndarray) -> list:
    return np.round(np.asarray(x, dtype=np.float64), _DIGITS).tolist()


def _channel(res: Result, labels: tuple[str, ...], duration_ms: int) -> dict:
    steps = step_probs(res.logits, frame_ms=FRAME_MS, step_ms=DEFAULT_STEP_MS)
    segs: list[Segment] = segments(steps, step_ms=DEFAULT_STEP_MS, labels=labels)
    if segs and segs[-1].end_ms > duration_ms:  # the last step may run past the end of the audio
        segs[-1] = dataclasses.replace(segs[-1], end_ms=max(segs[-1].start_ms, duration_ms))
    top, confidence = top_of(res.probs, labels)
    return {
        "utterance": {"probs": _r(res.probs), "top": top, "emoji": EMOJI.get(top, ""),
                      "confidence": round(confidence, _DIGITS)},
        "timeline": {"step_ms": DEFAULT_STEP_MS, "probs": _r(steps)},
        "segments": [s.as_dict() for s in segs],
        "summary": summary(segs),
    }


class Analyzer:
    """Scores uploaded files with the configured model (loaded on first use, once, thread-safe).

    Args:
        model_settings: model id or directory, device and precision (``EMOWATCH_MODEL__*``).
        max_seconds: longest file analysed (default :data:`MAX_ANALYSIS_S`, 30 min).
        segment_s: longest file scored in one pass (longer files: frame-aligned segments).
    """

    def __init__(self, model_settings: ModelSettings, *, max_seconds: float = MAX_ANALYSIS_S,
                 segment_s: float = DEFAULT_SEGMENT_S) -> None:
        self.settings = model_settings
        self.max_seconds = float(max_seconds)
        self.segment_s = float(segment_s)
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._model: EmotionModel | None = None
        self._engine: Engine | None = None

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def model(self) -> EmotionModel:
        """The loaded model (loads it on the first call; ``ModelLoadError`` when it cannot)."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    s = self.settings
                    t0 = time.perf_counter()
                    model = load_model(s.model, device=s.device, precision=s.precision, threads=s.threads)
                    self._engine = model.engine(max_seconds=self.segment_s + 2.0)
                    self._model = model
                    log.info("analysis model loaded", extra={"model": model.name, "version": model.version,
                                                             "device": model.device,
                                                             "seconds": round(time.perf_counter() - t0, 2)})
        return self._model

    def _channels(self, samples: np.ndarray, rate: int, roles: list[str]) -> list[np.ndarray]:
        try:
            x = np.asarray(samples)
        except Exception as e:  # noqa: BLE001 - anything unconvertible is bad input
            raise AnalysisError("bad_audio", f"samples are not an array: {e}") from None
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or not np.issubdtype(x.dtype, np.floating):
            raise AnalysisError("bad_audio", f"samples must be (n, channels) floats, got {x.dtype} {x.shape}")
        if x.shape[1] not in (1, 2):
            raise AnalysisError("unsupported_channels", f"{x.shape[1]} channels; only mono or stereo")
        if len(roles) != x.shape[1]:
            raise AnalysisError("bad_parameter", f"{len(roles)} roles for {x.shape[1]} channel(s)", 400)
        if rate not in SUPPORTED_RATES:
            raise AnalysisError("unsupported_rate", f"sample rate {rate} is not one of {SUPPORTED_RATES}")
        if x.shape[0] / rate > self.max_seconds:
            raise AnalysisError("too_long", f"{x.shape[0] / rate:.1f} s is longer than the {self.max_seconds:g} s "
                                            "analysis limit (the file can still be streamed)")
        if not np.isfinite(x).all():
            raise AnalysisError("non_finite", "audio contains NaN or infinite samples")
        chans = [resample(np.ascontiguousarray(x[:, c], dtype=np.float32), rate) for c in range(x.shape[1])]
        if len(chans[0]) < MIN_SAMPLES:
            raise AnalysisError("too_short", f"{1000 * x.shape[0] / rate:.1f} ms of audio; the model needs at "
                                             f"least {1000 * MIN_SAMPLES / SAMPLE_RATE:g} ms (one frame)")
        return chans

    def analyze(self, samples: np.ndarray, rate: int, *, granularity: str = "utterance", embeddings: bool = False,
                roles: list[str] | None = None, call_id: str | None = None) -> AnalysisResult:
        """Score a file: ``samples`` (n, channels) float32 in [-1, 1] at ``rate`` Hz (1-D = mono).

        ``roles``: one per channel (default ``["MIXED"]``); stereo results come per channel in that
        order. Raises :class:`AnalysisError` (``code``/``status``) for audio that cannot be analysed,
        ``ModelLoadError`` when the model cannot be loaded."""
        if granularity not in GRANULARITIES:
            raise AnalysisError("bad_parameter", f"granularity {granularity!r} is not one of {GRANULARITIES}", 400)
        roles = list(roles) if roles is not None else ["MIXED"]
        chans = self._channels(samples, rate, roles)
        duration_ms = int(round(1000 * len(samples) / rate))
        model = self.model()
        want = ("frames" if granularity == "frame" else True) if embeddings else False
        t0 = time.perf_counter()
        with self._run_lock:
            assert self._engine is not None
            results = score_files(self._engine, chans, segment_s=self.segment_s, embeddings=want)
        for r in results:
            if isinstance(r, ItemError):
                status = 500 if r.code in ("internal", "out_of_memory") else 422
                raise AnalysisError(r.code, r.reason, status)
        ok: list[Result] = [r for r in results if isinstance(r, Result)]
        labels = tuple(model.labels)
        body: dict = {"duration_ms": duration_ms, "labels": list(labels), "granularity": granularity,
                      "model": {"name": model.name, "version": model.version}}
        per = [_channel(r, labels, duration_ms) for r in ok]
        if len(per) == 1:
            body.update(per[0])
        else:
            body["channels"] = [{"role": role, **c} for role, c in zip(roles, per)]
        emb = None
        if embeddings:
            emb = ok[0].embedding if len(ok) == 1 else np.stack([r.embedding for r in ok])
            emb = np.asarray(emb, dtype=np.float32)
        log.info("file analysed", extra={"call_id": call_id, "duration_ms": duration_ms, "channels": len(ok),
                                         "granularity": granularity,
                                         "seconds": round(time.perf_counter() - t0, 3)})
        return AnalysisResult(body, emb)
