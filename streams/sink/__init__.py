"""emowatch.streams.sink."""
