"""emowatch.streams.local."""
