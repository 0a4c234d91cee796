"""emowatch.streams.cli."""
