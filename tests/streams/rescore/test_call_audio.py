"""call_id rows of `emowatch model evaluate`: a stored call's audio read back from the audio topic (real broker)."""
from __future__ import annotations

import numpy as np
import pytest

from emowatch.models.loader import load_model
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.evaluate import evaluate
from emowatch.models.quality.labels import LabelledItem
from emowatch.models.synth import synth_clip
from emowatch.streams.audio.chunking import chunk_records
from emowatch.streams.kafka.audio_publisher import AudioPublisher
from emowatch.streams.rescore.call_audio import read_call_audio
from emowatch.streams.resources import demo_model_dir
from emowatch.streams.settings import Settings
from emowatch.topics.model_io import SAMPLE_RATE

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000


def _item(line: int, call_id: str, label: str = "angry", **kw) -> LabelledItem:
    return LabelledItem(line=line, label=label, call_id=call_id, **kw)


@pytest.fixture
def stored(kafka_settings, topics):
    """Three calls in the audio topic: mono (one chunk sent twice), stereo MIXED, and one nobody asks for."""
    rng = np.random.default_rng(0)
    mono = synth_clip("angry", 3.5, rng)
    stereo = np.stack([synth_clip("sad", 2.0, rng), synth_clip("neutral", 2.0, rng)], axis=1)
    records = list(chunk_records(mono, SAMPLE_RATE, call_id="qa-mono", role="CUSTOMER", start_time_ms=T0))
    records.insert(2, dict(records[1]))  # a redelivered chunk
    records += chunk_records(stereo, SAMPLE_RATE, call_id="qa-stereo", role="MIXED", start_time_ms=T0)
    records += chunk_records(mono[:SAMPLE_RATE], SAMPLE_RATE, call_id="qa-other", start_time_ms=T0)
    pub = AudioPublisher(kafka_settings)
    for r in records:
        pub.send(r)
    pub.flush()
    assert not pub.errors
    return Settings(kafka=kafka_settings), mono, stereo


def test_calls_are_read_back_by_role_and_span(stored):
    settings, mono, stereo = stored
    items = [_item(2, "qa-mono"), _item(3, "qa-mono", start_s=1.0, end_s=2.5),
             _item(4, "qa-stereo", "sad", role="customer"), _item(5, "qa-stereo", "neutral", role="AGENT"),
             _item(6, "qa-missing")]
    got = read_call_audio(settings, items, source="set.csv")
    assert sorted(got) == [2, 3, 4, 5]  # the missing call is left to the evaluation to report
    assert np.allclose(got[2], mono, atol=1e-4) and len(got[2]) == len(mono)
    assert np.allclose(got[3], mono[SAMPLE_RATE:int(2.5 * SAMPLE_RATE)], atol=1e-4)
    assert np.allclose(got[4], stereo[:, 0], atol=1e-4) and np.allclose(got[5], stereo[:, 1], atol=1e-4)
    with pytest.raises(QualityError, match=r"set.csv:7: call 'qa-stereo' has the roles \['AGENT', 'CUSTOMER'\]; "
                                           "give a role column"):
        read_call_audio(settings, [_item(7, "qa-stereo")], source="set.csv")
    with pytest.raises(QualityError, match=r"set.csv:8: start_s 9 is past the end of call 'qa-mono'"):
        read_call_audio(settings, [_item(8, "qa-mono", start_s=9.0)], source="set.csv")


def test_evaluate_scores_call_rows_and_lists_missing_calls(stored):
    settings, _, _ = stored
    bundled_model = load_model(str(demo_model_dir()), device="cpu", precision="fp32")
    items = [_item(2, "qa-mono"), _item(3, "qa-stereo", "sad", role="CUSTOMER"), _item(4, "qa-gone", "sad")]
    result = evaluate(items, bundled_model, call_audio=lambda its: read_call_audio(settings, its), source="set.csv")
    assert [(r["line"], r["key"], r["label"]) for r in result["items"]] == [(2, "qa-mono", "angry"),
                                                                          (3, "qa-stereo", "sad")]
    assert [(e["line"], e["code"]) for e in result["errors"]] == [(4, "no_audio")]
    assert result["scenarios"]["all"]["n"] == 2
