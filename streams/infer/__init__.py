"""emowatch.streams.infer."""
