"""A ``scores`` row rebuilt as the FrameScores record the topic held, voice activity included."""
from __future__ import annotations

import numpy as np

from emowatch.streams.replay.clickhouse_source import record_of

ROW = {"call_id": "c", "role": "MIXED", "seq": 3, "start_ms": 3000, "frame_ms": 20, "n_frames": 2, "labels": ["a"] * 9,
       "logits": [0.5] * 18, "probs": [1 / 9] * 9, "model": "m", "model_version": "v", "business_line": "b",
       "event_time": 5000, "gap_before": 0, "end_of_call": 1, "attributes": {"agent_id": "x"}}


def test_voice_activity_is_read_back_and_empty_arrays_are_null():
    rec = record_of({**ROW, "speech": [0.9, 0.1], "energy_db": [-20.0, -60.0], "vad": "silero:5"})
    assert rec["speech"].tolist() == np.float32([0.9, 0.1]).tolist() and rec["speech"].dtype == np.float32
    assert rec["energy_db"].tolist() == [-20.0, -60.0] and rec["vad"] == "silero:5"
    none = record_of({**ROW, "speech": [], "energy_db": [], "vad": ""})  # not computed (VAD off, or before v3)
    assert (none["speech"], none["energy_db"], none["vad"]) == (None, None, None)
    assert none["end_of_call"] is True and none["gap_before"] is False and none["event_time"] == 5000
