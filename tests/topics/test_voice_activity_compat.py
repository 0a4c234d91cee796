"""FrameScores v3 (voice activity: ``speech``, ``energy_db``, ``vad``) and older readers and writers.

"Old readers unaffected": a reader pinned to v1 or v2 decodes v3 messages (the new fields dropped), in list
and numpy mode, in both framings; a v3 reader decodes v1/v2 messages with the new fields null. A consumer
*built before v3* knows v3 only through a Schema Registry (it fetches the writer schema by id); without one it
cannot know the new fingerprint and dead-letters the message, hence BACKWARD's order: consumers first.
"""
from __future__ import annotations

import uuid

import numpy as np
import pytest

from emowatch.topics import serde as serde_module
from emowatch.topics.catalog import fingerprint_table, load_schema
from emowatch.topics.examples import example_record
from emowatch.topics.serde import AvroSerde, SerdeError

TOPIC = "emowatch.scores.v1"
SPEECH = [0.0, 0.125, 0.5, 0.875, 1.0]
ENERGY = [-100.0, -60.5, -30.25, -12.0, -3.0]
VAD = "silero-vad 6.2.3 context 512 ms"


def v3_record() -> dict:
    return example_record("FrameScores", trace_id=None, speech=SPEECH, energy_db=ENERGY, vad=VAD)


@pytest.mark.parametrize("float_arrays", ["list", "numpy"])
@pytest.mark.parametrize("reader_version", [1, 2])
@pytest.mark.parametrize("registry", [False, True])
def test_older_reader_decodes_v3(reader_version: int, float_arrays: str, registry: bool) -> None:
    url = f"mock://{uuid.uuid4().hex}" if registry else None
    data = AvroSerde("FrameScores", registry_url=url).encode(v3_record(), topic=TOPIC)
    out = AvroSerde("FrameScores", version=reader_version, registry_url=url, float_arrays=float_arrays).decode(
        data, topic=TOPIC)
    assert list(out) == list(load_schema("FrameScores", reader_version).field_names)
    assert not {"speech", "energy_db", "vad"} & set(out)
    logits = out["logits"].tolist() if float_arrays == "numpy" else out["logits"]
    assert logits == example_record("FrameScores")["logits"] and out["n_frames"] == 5


@pytest.mark.parametrize("writer_version", [1, 2])
@pytest.mark.parametrize("float_arrays", ["list", "numpy"])
def test_v3_reader_decodes_older_messages_with_null_voice_activity(writer_version: int, float_arrays: str) -> None:
    data = AvroSerde("FrameScores", version=writer_version).encode(example_record("FrameScores"), topic=TOPIC)
    out = AvroSerde("FrameScores", float_arrays=float_arrays).decode(data, topic=TOPIC)
    assert (out["speech"], out["energy_db"], out["vad"]) == (None, None, None)
    assert list(out) == list(load_schema("FrameScores", 3).field_names)


def test_v3_numpy_mode_returns_the_voice_activity_as_float32_arrays() -> None:
    data = AvroSerde("FrameScores").encode(v3_record(), topic=TOPIC)
    out = AvroSerde("FrameScores", float_arrays="numpy").decode(data, topic=TOPIC)
    assert out["speech"].dtype == np.float32 and out["speech"].tolist() == SPEECH
    assert out["energy_db"].dtype == np.float32 and out["energy_db"].tolist() == ENERGY
    assert out["vad"] == VAD


def test_a_build_without_v3_needs_the_registry_to_read_v3(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulates a consumer deployed before v3: its fingerprint table has no v3."""
    v3 = load_schema("FrameScores", 3).fingerprint
    old_table = {fp: info for fp, info in fingerprint_table().items() if fp != v3}
    url = f"mock://{uuid.uuid4().hex}"
    single = AvroSerde("FrameScores").encode(v3_record(), topic=TOPIC)
    framed = AvroSerde("FrameScores", registry_url=url).encode(v3_record(), topic=TOPIC)
    monkeypatch.setattr(serde_module, "fingerprint_table", lambda: old_table)
    old = AvroSerde("FrameScores", version=2, registry_url=url)
    with pytest.raises(SerdeError, match="unknown schema fingerprint .*upgrade consumers first"):
        old.decode(single, topic=TOPIC)
    out = old.decode(framed, topic=TOPIC)  # the writer schema comes from the registry
    assert "speech" not in out and out["call_id"] == "call-0001"
