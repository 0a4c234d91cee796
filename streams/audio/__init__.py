"""emowatch.streams.audio."""
