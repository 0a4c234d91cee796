"""What the emotion model takes in and gives out, as every component sees it (the one definition).

* :data:`SAMPLE_RATE`: the model's input rate. AudioChunks at other rates are resampled to it
  (``streams/audio/codec.py``); the bundled samples, the synthetic speech and the benchmarks
  are written at it.
* :data:`FRAME_MS`: one FrameScores frame (the ``frame_ms`` default of the schema): the
  feature encoder's stride, :data:`SAMPLES_PER_FRAME` samples, :data:`FRAMES_PER_S` frames a second.
* :data:`EMOTIONS`: the nine emotion2vec+ classes in model output order, i.e. the column
  order of FrameScores ``logits``/``probs`` and the schema's ``labels`` default. The model's
  own ``tokens.txt`` spells them ``生气/angry`` ... ``<unk>`` (``models/checkpoint.py`` TOKENS);
  ``<unk>`` is ``unknown`` here.

This module lives with the topic contracts because these values are part of the FrameScores
contract (``tests/topics/test_model_io.py`` checks the schemas' defaults agree). It imports
nothing, so ``rules/`` (no torch, no Kafka), ``models/`` (no Kafka), the streams and the
benchmarks all take the values from here; no other module may define them
(``tests/test_no_duplicate_constants.py``).
"""

from __future__ import annotations

__all__ = ["EMOTIONS", "FRAME_MS", "FRAMES_PER_S", "SAMPLES_PER_FRAME", "SAMPLE_RATE"]

#: Model input rate (Hz, mono float32).
SAMPLE_RATE = 16_000
#: Duration of one score frame (ms).
FRAME_MS = 20
#: Score frames per second of audio (50).
FRAMES_PER_S = 1000 // FRAME_MS
#: Input samples per score frame (320, the feature encoder's stride).
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000

#: The nine emotion2vec+ classes in model output order (the logits' column order).
EMOTIONS: tuple[str, ...] = ("angry", "disgusted", "fearful", "happy", "neutral", "other", "sad",
                             "surprised", "unknown")
