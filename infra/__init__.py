"""emowatch.infra."""
