"""emowatch.bench."""
