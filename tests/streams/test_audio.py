import numpy as np
import pytest

from emowatch.streams.audio import AudioError, decode_pcm, encode_pcm_s16le


def test_s16_mono_roundtrip():
    x = np.sin(np.linspace(0, 100, 16000)).astype(np.float32) * 0.5
    d = decode_pcm(encode_pcm_s16le(x), encoding="PCM_S16LE", sample_rate=16000, channels=1, max_seconds=5)
    assert len(d.channels) == 1 and d.duration_ms == 1000
    assert np.max(np.abs(d.channels[0] - x)) < 1e-4


def test_f32_stereo_split_and_resample():
    left = np.full(8000, 0.25, np.float32)
    right = np.full(8000, -0.5, np.float32)
    inter = np.stack([left, right], axis=1).astype("<f4").tobytes()
    d = decode_pcm(inter, encoding="PCM_F32LE", sample_rate=8000, channels=2, max_seconds=5)
    assert [c.size for c in d.channels] == [16000, 16000]
    assert abs(float(np.median(d.channels[0])) - 0.25) < 1e-3
    assert abs(float(np.median(d.channels[1])) + 0.5) < 1e-3


@pytest.mark.parametrize("kwargs,code", [
    (dict(audio=b"\x00\x00", encoding="MP3", sample_rate=16000, channels=1), "unknown_encoding"),
    (dict(audio=b"", encoding="PCM_S16LE", sample_rate=16000, channels=1), "empty"),
    (dict(audio=b"\x00\x00\x00", encoding="PCM_S16LE", sample_rate=16000, channels=1), "truncated"),
    (dict(audio=np.array([np.nan], "<f4").tobytes(), encoding="PCM_F32LE", sample_rate=16000, channels=1), "non_finite"),
    (dict(audio=b"\x00\x00" * 16000 * 3, encoding="PCM_S16LE", sample_rate=16000, channels=1), "too_long"),
    (dict(audio=b"\x00\x00", encoding="PCM_S16LE", sample_rate=12345, channels=1), "unsupported_rate"),
])
def test_rejections_have_stable_codes(kwargs, code):
    with pytest.raises(AudioError) as ei:
        decode_pcm(max_seconds=2, **kwargs)
    assert ei.value.code == code
