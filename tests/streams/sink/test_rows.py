"""``scores_row`` refuses FrameScores that would be stored wrong (the sink dead-letters them, issue #17)."""
from __future__ import annotations

import math

import pytest

from emowatch.streams.sink.rows import scores_row
from emowatch.topics.examples import example_record


def test_a_well_formed_record_becomes_a_row():
    row = scores_row(example_record("FrameScores"), 0, 1)
    assert row[1] == "call-0001"


@pytest.mark.parametrize(("over", "reason"), [
    ({"logits": [0.5] * 9}, "logits has 9 values"),
    ({"chunk_probs": [0.5]}, "chunk_probs has 1 values"),
    ({"logits": [math.nan] * 45}, "logits hold NaN or infinity"),
    ({"chunk_probs": [math.inf] + [0.0] * 8}, "chunk_probs hold NaN or infinity"),
    ({"speech": [0.5]}, "speech has 1 values"),
])
def test_misfit_or_non_finite_scores_are_refused(over, reason):
    with pytest.raises(ValueError, match=reason):
        scores_row(example_record("FrameScores", **over), 0, 1)
