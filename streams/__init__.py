"""emowatch.streams."""
