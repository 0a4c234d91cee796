"""Voice activity per 20 ms frame (streams/infer/vad.py, silero.py): the real detectors on the bundled samples,
silence and noise; the frame alignment; determinism whatever the batch; the FrameScores fields."""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from emowatch.streams.infer.silero import BLOCK, WINDOW, SileroVad
from emowatch.streams.infer.vad import ENERGY_FLOOR_DB, VadError, frame_energy_db, make_frame_activity
from emowatch.streams.resources import samples_dir
from emowatch.topics.model_io import SAMPLE_RATE, SAMPLES_PER_FRAME

SECOND = SAMPLE_RATE
CONTEXT = 2 * SECOND  # the agent's default context_s


@pytest.fixture(scope="module")
def silero():
    return make_frame_activity("silero", context_ms=256, max_context_s=2.0)


@pytest.fixture(scope="module")
def webrtc():
    return make_frame_activity("webrtc", context_ms=256, webrtc_mode=2, max_context_s=2.0)


def sample(name: str) -> np.ndarray:
    audio, rate = sf.read(Path(samples_dir()) / name, dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1
    return audio


def chunks(audio: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """Every 1 s chunk of ``audio`` as the agent's window (up to 2 s of left context + the chunk)."""
    return [(audio[max(0, s - CONTEXT): s + SECOND], SECOND) for s in range(0, len(audio) - SECOND + 1, SECOND)]


def speech_of(activity, audio: np.ndarray) -> np.ndarray:
    return np.concatenate([a.speech for a in activity.annotate(chunks(audio))])


def noise(kind: str, seconds: int = 6) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(seconds * SECOND) / SAMPLE_RATE
    if kind == "silence":
        return np.zeros(seconds * SECOND, np.float32)
    if kind == "white":
        return (0.1 * rng.standard_normal(len(t))).astype(np.float32)
    return (0.1 * np.sin(2 * np.pi * 50 * t) + 0.003 * rng.standard_normal(len(t))).astype(np.float32)  # hum


def test_silero_is_the_package_model_fed_window_by_window() -> None:
    """Same probabilities as silero-vad's own TorchScript model streamed after reset_states()."""
    dist = metadata.distribution("silero-vad")
    model = torch.jit.load(str(dist.locate_file("silero_vad/data/silero_vad.jit")), map_location="cpu")
    audio = sample("calm_01.wav")[: 60 * WINDOW]
    model.reset_states()
    with torch.inference_mode():
        ref = torch.cat([model(torch.from_numpy(audio[i:i + WINDOW].copy())[None], SAMPLE_RATE)
                         for i in range(0, len(audio), WINDOW)], dim=1)[0].numpy()
    ours = SileroVad().probabilities(audio[None])[0]
    assert ours.shape == (60,) and np.abs(ours - ref).max() < 1e-5
    assert ref.max() > 0.9 and ref.min() < 0.1  # the comparison covers speech and pauses


def test_silero_leaves_torch_threads_and_never_imports_the_package(silero) -> None:
    threads = torch.get_num_threads()
    silero.annotate(chunks(sample("calm_01.wav")[:2 * SECOND]))
    assert torch.get_num_threads() == threads
    assert "silero_vad" not in sys.modules  # its model module sets torch.set_num_threads(1) at import


@pytest.mark.parametrize("name", ["calm_01.wav", "escalating_01.wav"])
def test_silero_speech_high_on_the_bundled_speech(silero, name: str) -> None:
    audio = sample(name)
    speech = speech_of(silero, audio)
    assert speech.shape == (len(audio) // SECOND * 50,) and speech.dtype == np.float32
    assert speech.mean() > 0.5 and (speech > 0.5).mean() > 0.5  # measured: 0.61 / 0.65 and 0.56 / 0.57


@pytest.mark.parametrize("kind", ["silence", "white", "hum"])
def test_silero_speech_low_on_silence_and_noise(silero, kind: str) -> None:
    speech = speech_of(silero, noise(kind))
    assert speech.max() < 0.5 and speech.mean() < 0.05


def test_silero_low_on_the_no_speech_sample_where_webrtc_says_speech(silero, webrtc) -> None:
    """quiet_01.wav is line noise / hum / near silence (its manifest: 'no speech'); so is a mains hum."""
    assert speech_of(silero, sample("quiet_01.wav")).mean() < 0.05
    assert speech_of(webrtc, sample("quiet_01.wav")).mean() > 0.5  # why silero is the default
    assert speech_of(webrtc, noise("hum")).mean() > 0.5


def test_webrtc_speech_on_samples_and_none_on_silence(webrtc) -> None:
    speech = speech_of(webrtc, sample("calm_01.wav"))
    assert set(np.unique(speech)) <= {0.0, 1.0} and speech.mean() > 0.7
    assert speech_of(webrtc, noise("silence")).max() == 0.0
    assert webrtc.name.startswith("webrtcvad ") and "mode 2" in webrtc.name


def test_energy_db_is_the_rms_level_of_each_frame() -> None:
    t = np.arange(4 * SAMPLES_PER_FRAME) / SAMPLE_RATE
    chunk = np.sin(2 * np.pi * 500 * t).astype(np.float32)  # full-scale sine: -3.01 dB
    chunk[SAMPLES_PER_FRAME:2 * SAMPLES_PER_FRAME] *= 0.1  # -23.01 dB
    chunk[2 * SAMPLES_PER_FRAME:3 * SAMPLES_PER_FRAME] = 0.0  # digital silence
    chunk[3 * SAMPLES_PER_FRAME:] = 1.0  # full-scale DC: 0 dB
    levels = frame_energy_db(np.concatenate([chunk, chunk[:100]]), 4)  # the part frame at the end has no value
    assert levels.dtype == np.float32
    assert np.allclose(levels, [-3.0103, -23.0103, ENERGY_FLOOR_DB, 0.0], atol=1e-3)
    assert frame_energy_db(np.full(SAMPLES_PER_FRAME, 1e-9, np.float32), 1)[0] == ENERGY_FLOOR_DB


def test_a_silent_gap_lands_on_its_frames(silero) -> None:
    """Frames 20-34 of a speech chunk (7-8 s of calm_01) zeroed: energy_db is the floor exactly there, speech
    drops inside the gap, and the windows that end before the gap give exactly the values without it."""
    audio = sample("calm_01.wav")
    start = 7 * SECOND
    window = audio[start - CONTEXT: start + SECOND].copy()
    plain = silero.annotate([(window, SECOND)])[0]
    gap = slice(CONTEXT + 20 * SAMPLES_PER_FRAME, CONTEXT + 35 * SAMPLES_PER_FRAME)
    window[gap] = 0.0
    act = silero.annotate([(window, SECOND)])[0]
    assert len(act.speech) == len(act.energy_db) == 50
    silent = np.flatnonzero(act.energy_db == ENERGY_FLOOR_DB)
    assert silent.tolist() == list(range(20, 35))
    assert plain.speech[:18].min() > 0.5  # speech at 7.0-7.36 s of the sample
    assert act.speech[24:35].max() < 0.15  # in the gap (silero needs a few windows to let go of speech)
    # the stream's 512-sample windows end at the chunk's last sample: window k ends at chunk sample
    # 16000 - 512 * (31 - k) (a 1 s chunk spans the last 31.25 windows); frame i reads the window of its centre
    offset = 32 * WINDOW - SECOND
    ends = ((offset + np.arange(50) * SAMPLES_PER_FRAME + SAMPLES_PER_FRAME // 2) // WINDOW + 1) * WINDOW - offset
    before = ends <= 20 * SAMPLES_PER_FRAME
    assert before.sum() == 20  # frames 0-19
    assert np.array_equal(act.speech[before], plain.speech[before])
    assert not np.array_equal(act.speech[~before], plain.speech[~before])


@pytest.mark.parametrize("samples", [SECOND + 100, SECOND // 2 - 1, 3 * SAMPLES_PER_FRAME, 319])
def test_one_value_per_logit_frame(silero, webrtc, samples: int) -> None:
    audio = sample("calm_01.wav")
    for activity in (silero, webrtc):
        (act,) = activity.annotate([(audio[: SECOND + samples], samples)])
        n = samples // SAMPLES_PER_FRAME  # the engine's logit frames
        assert len(act.speech) == len(act.energy_db) == n


def test_same_values_whatever_the_batch(silero, webrtc) -> None:
    audio = sample("escalating_01.wav")
    rng = np.random.default_rng(3)
    items = []
    for _ in range(2 * BLOCK + 3):  # chunks of several lengths, with full, short and no left context
        emit = int(rng.choice([SECOND, SECOND // 2, SECOND + 4000]))
        ctx = int(rng.choice([0, 3000, CONTEXT]))
        start = int(rng.integers(CONTEXT, len(audio) - 2 * SECOND))
        items.append((audio[start - ctx: start + emit], emit))
    for activity in (silero, webrtc):
        alone = [activity.annotate([item])[0].speech for item in items]
        for order in (np.arange(len(items)), rng.permutation(len(items)), rng.permutation(len(items))[:5]):
            batch = activity.annotate([items[i] for i in order])
            assert all(np.array_equal(a.speech, alone[i]) for a, i in zip(batch, order))


def test_off_computes_energy_only() -> None:
    off = make_frame_activity("off", context_ms=512)
    (act,) = off.annotate([(np.zeros(SECOND, np.float32), SECOND)])
    assert act.speech is None and act.vad is None and off.name is None
    assert act.energy_db.tolist() == [ENERGY_FLOOR_DB] * 50


def test_names_carry_version_and_settings(silero) -> None:
    assert silero.name == f"silero-vad {metadata.version('silero-vad')} context 256 ms"
    capped = make_frame_activity("silero", context_ms=5000, max_context_s=1.0)
    assert capped.name.endswith("context 1000 ms") and capped.detector.context == SECOND
    with pytest.raises(VadError, match="EMOWATCH_INFER__VAD"):
        make_frame_activity("pyannote", context_ms=0)


def test_a_failing_detector_leaves_speech_null(silero, monkeypatch: pytest.MonkeyPatch) -> None:
    activity = make_frame_activity("silero", context_ms=0)

    def broken(items):
        raise RuntimeError("boom")

    monkeypatch.setattr(activity.detector, "speech", broken)
    (act,) = activity.annotate([(np.zeros(SECOND, np.float32), SECOND)])
    assert act.speech is None and act.vad is None and len(act.energy_db) == 50 and activity.failures == 1
