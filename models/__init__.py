"""emowatch.models."""
