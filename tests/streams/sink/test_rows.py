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


def test_non_finite_scores_are_refused_in_the_sinks_numpy_arrays_and_large_finite_ones_kept():
    """The sink decodes float arrays into numpy (float32): the same refusals there, and finite values whose sum
    overflows are not taken for infinity."""
    import numpy as np

    for values in ([0.1] * 44 + [math.nan], [0.1] * 44 + [-math.inf]):
        with pytest.raises(ValueError, match="logits hold NaN or infinity"):
            scores_row(example_record("FrameScores", logits=np.array(values, dtype=np.float32)), 0, 1)
    for big in (np.full(45, 3e38, dtype=np.float32), [1e308] * 45):  # finite; the list's sum overflows
        assert scores_row(example_record("FrameScores", logits=big), 0, 1)[12] is big
