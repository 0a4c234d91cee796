import numpy as np
import pytest

from emowatch.streams.audio.codec import AudioError, decode_pcm, encode_pcm_s16le


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
    (dict(audio=np.array([np.nan], "<f4").tobytes(), encoding="PCM_F32LE", sample_rate=16000, channels=1),
     "non_finite"),
    (dict(audio=b"\x00\x00" * 16000 * 3, encoding="PCM_S16LE", sample_rate=16000, channels=1), "too_long"),
    (dict(audio=b"\x00\x00", encoding="PCM_S16LE", sample_rate=12345, channels=1), "unsupported_rate"),
])
def test_rejections_have_stable_codes(kwargs, code):
    with pytest.raises(AudioError) as ei:
        decode_pcm(max_seconds=2, **kwargs)
    assert ei.value.code == code


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 24000, 32000, 44100, 48000])
def test_common_rates_resample_to_16k(rate):
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    d = decode_pcm(encode_pcm_s16le(x), encoding="PCM_S16LE", sample_rate=rate, channels=1, max_seconds=5)
    assert abs(d.channels[0].size - 16000) <= 1 and d.duration_ms == 1000
    y = d.channels[0][1000:15000]
    assert abs(float(np.sqrt(np.mean(y ** 2))) - 0.5 / np.sqrt(2)) < 0.01  # 440 Hz tone survives


def test_s16_stereo_is_deinterleaved():
    left, right = np.full(160, 0.5, np.float32), np.full(160, -0.25, np.float32)
    inter = np.stack([left, right], axis=1).reshape(-1)
    d = decode_pcm(encode_pcm_s16le(inter), encoding="PCM_S16LE", sample_rate=16000, channels=2, max_seconds=1)
    assert np.allclose(d.channels[0], 0.5, atol=1e-4) and np.allclose(d.channels[1], -0.25, atol=1e-4)


def test_inf_and_more_than_two_channels_are_rejected():
    with pytest.raises(AudioError) as ei:
        decode_pcm(np.array([np.inf, 0], "<f4").tobytes(), encoding="PCM_F32LE", sample_rate=16000, channels=1,
                   max_seconds=1)
    assert ei.value.code == "non_finite"
    with pytest.raises(AudioError) as ei:
        decode_pcm(b"\x00" * 12, encoding="PCM_S16LE", sample_rate=16000, channels=3, max_seconds=1)
    assert ei.value.code == "unsupported_channels"
