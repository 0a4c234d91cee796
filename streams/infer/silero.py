"""Silero VAD (the ``silero-vad`` package's own 16 kHz model) batched across calls, deterministic. torch, no Kafka.

The package's streaming API feeds one 512-sample window (32 ms) at a time to a TorchScript module that
keeps its LSTM state and the last 64 samples inside the module. The agent instead scores a *stream* per
chunk (VAD warm-up from the left context + the chunk, from a fresh state: :mod:`emowatch.streams.infer.vad`)
and many streams at once, so this module runs the same network itself, with the weights read from the
package's ``silero_vad.jit``:

* front end per window (independent of the state, so the windows of all streams share its passes): the 64
  context samples + the 512 window samples, right-padded by reflection to 640, a 256-point STFT at hop
  128 (periodic Hann window, the model's ``forward_basis_buffer``; computed here with ``torch.fft.rfft``),
  magnitudes, four conv + ReLU layers (each as one matrix product) -> 128 features;
* the LSTM cell (128) stepped over the windows of each stream, then ReLU, a 1x1 conv and a sigmoid ->
  the speech probability of each window.

Equal to the package's ``model(window, 16000)`` fed window by window after ``reset_states()`` within
float32 rounding (``tests/streams/infer/test_silero.py``: max difference < 1e-5).

**Batch invariance.** A BLAS matrix product may round a row differently depending on how many rows
it is given, so the streams run in fixed blocks of :data:`BLOCK` (padded with silent streams), every
torch call on a block has the same shapes whatever else is batched, and the blocks are passed one by one.
The probabilities of a stream therefore depend on its own samples only, bit for bit. The passes run on
one torch thread (restored afterwards): they are too small to gain from a second one.

The ``silero_vad`` Python package is never imported: its ``model`` module calls
``torch.set_num_threads(1)`` at import, which would silently slow the emotion model down. The weights
file is located through the package's installed metadata instead.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - torch's convention

from emowatch.topics.errors import EmowatchError
from emowatch.topics.model_io import SAMPLE_RATE

__all__ = ["BLOCK", "FRONT_BLOCK", "WINDOW", "SileroError", "SileroVad", "silero_version"]

DISTRIBUTION = "silero-vad"
WINDOW = 512  #: samples per model step of the 16 kHz model
_WINDOW_MS = 32  #: ... i.e. 32 ms: the model's rate is the agent's (topics.model_io.SAMPLE_RATE)
_CONTEXT = 64  #: samples of the previous window each step also sees
_N_FFT, _HOP = 256, 128
BLOCK = 4  #: streams per fixed-shape pass of the LSTM (its cost is per stream: a small block wastes little)
FRONT_BLOCK = 32  #: windows per fixed-shape pass of the front end (windows of all streams share the blocks)
_FEATURES = 128
_ENCODER_STRIDES = (1, 2, 2, 1)


class SileroError(EmowatchError):
    """silero-vad is not installed or its model file is not what this module expects."""


def silero_version() -> str:
    """Installed silero-vad version, e.g. ``"6.2.3"`` (SileroError when not installed)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise SileroError("silero-vad is not installed (pip install silero-vad); "
                          "or set EMOWATCH_INFER__VAD=webrtc or off") from None


def _model_file() -> Path:
    silero_version()
    dist = metadata.distribution(DISTRIBUTION)
    path = Path(str(dist.locate_file("silero_vad/data/silero_vad.jit")))
    if not path.is_file():
        raise SileroError(f"silero-vad {dist.version}: model file {path} not found")
    return path


class SileroVad:
    """Speech probability per 512-sample window of 16 kHz streams (see the module docstring)."""

    def __init__(self) -> None:
        if WINDOW * 1000 != SAMPLE_RATE * _WINDOW_MS:  # pragma: no cover - the 16 kHz model is the one used
            raise SileroError(f"the silero model used here is the 16 kHz one, the audio is {SAMPLE_RATE} Hz")
        self.version = silero_version()
        path = _model_file()
        try:
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
            w = {k[len("_model."):]: v.detach().to(torch.float32).clone()
                 for k, v in state.items() if k.startswith("_model.")}
            basis = w["stft.forward_basis_buffer"]
            # each conv (kernel 3, padding 1) as one matrix product over its unfolded input
            self._conv = [(w[f"encoder.{i}.reparam_conv.weight"].flatten(1).T.contiguous(),
                           w[f"encoder.{i}.reparam_conv.bias"], s) for i, s in enumerate(_ENCODER_STRIDES)]
            self._lstm = torch.nn.LSTM(_FEATURES, _FEATURES, batch_first=True)
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(self._lstm, f"{name}_l0").data.copy_(w[f"decoder.rnn.{name}"])
            self._lstm.eval()
            self._w_out = w["decoder.decoder.2.weight"].reshape(-1, 1).contiguous()
            self._b_out = w["decoder.decoder.2.bias"]
        except (KeyError, RuntimeError) as exc:
            raise SileroError(f"silero-vad {self.version}: unexpected model file {path}: {exc}") from exc
        if tuple(basis.shape) != (2 * (_N_FFT // 2 + 1), 1, _N_FFT):
            raise SileroError(f"silero-vad {self.version}: unexpected STFT basis {tuple(basis.shape)}")
        # The basis rows are hann * cos and -hann * sin: its k=0 row is the window itself.
        self._hann = basis[0, 0].clone()
        self._lock = threading.Lock()

    def probabilities(self, streams: np.ndarray) -> np.ndarray:
        """``(S, T * 512)`` float32 audio -> ``(S, T)`` float32 speech probability per window.

        Every stream starts from a fresh state (zero LSTM state, zero context before its first window).
        """
        x = np.asarray(streams, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] % WINDOW or x.shape[1] == 0:
            raise ValueError(f"streams must be (S, T*{WINDOW}) with T >= 1, got {x.shape}")
        n, t = x.shape[0], x.shape[1] // WINDOW
        with self._lock, _one_thread(), torch.inference_mode():
            frames = _stft_frames(torch.from_numpy(x)).reshape(n * t, 4, _N_FFT)
            feats = torch.cat([self._features(_padded(frames[i:i + FRONT_BLOCK], FRONT_BLOCK))
                               for i in range(0, n * t, FRONT_BLOCK)])[: n * t].reshape(n, t, -1)
            out = torch.cat([self._recur(_padded(feats[i:i + BLOCK], BLOCK)) for i in range(0, n, BLOCK)])
        return out[:n].numpy()

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """STFT frames of :data:`FRONT_BLOCK` windows ``(FRONT_BLOCK, 4, 256)`` -> features ``(FRONT_BLOCK, 128)``."""
        spec = torch.fft.rfft(frames * self._hann, dim=-1)
        feats = torch.sqrt(spec.real.square() + spec.imag.square()).transpose(1, 2)  # (w, 129, 4)
        n = feats.shape[0]
        for weight, bias, stride in self._conv:  # conv1d(kernel 3, padding 1) + ReLU, as im2col @ weight
            cols = F.pad(feats, (1, 1)).unfold(2, 3, stride)  # (w, channels, steps, 3)
            steps = cols.shape[2]
            out = F.relu(cols.permute(0, 2, 1, 3).reshape(n * steps, -1) @ weight + bias)
            feats = out.reshape(n, steps, -1).transpose(1, 2)
        return feats.squeeze(-1)

    def _recur(self, feats: torch.Tensor) -> torch.Tensor:
        """Features of :data:`BLOCK` streams ``(BLOCK, T, 128)`` -> speech probabilities ``(BLOCK, T)``."""
        hidden, _ = self._lstm(feats)
        return torch.sigmoid(F.relu(hidden) @ self._w_out + self._b_out).squeeze(-1)


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one intra-op thread meanwhile: these small passes gain nothing from a second thread but
    its spinning (twice the CPU, measured), and a fixed thread count keeps the rounding fixed too."""
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _stft_frames(x: torch.Tensor) -> torch.Tensor:
    """``(S, T*512)`` streams -> ``(S, T, 4, 256)``: per window its 640 samples (the 64 before it, zeros before
    the stream, + 512 + 64 reflected, the edge sample not repeated) cut into four STFT frames at hop 128."""
    span = F.pad(x, (_CONTEXT, 0)).unfold(1, WINDOW + _CONTEXT, WINDOW)  # (S, T, 576), a view
    tail = span[..., WINDOW + _CONTEXT - 2 - _CONTEXT: WINDOW + _CONTEXT - 1].flip(-1)
    return torch.cat([span, tail], dim=-1).unfold(2, _N_FFT, _HOP)


def _padded(a: torch.Tensor, rows: int) -> torch.Tensor:
    return a if len(a) == rows else torch.cat([a, a.new_zeros((rows - len(a), *a.shape[1:]))])
