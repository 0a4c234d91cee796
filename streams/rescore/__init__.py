"""emowatch.streams.rescore: re-run inference over the audio topic with another model (``emowatch rescore``)."""
