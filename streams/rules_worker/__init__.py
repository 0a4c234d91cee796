"""emowatch.streams.rules_worker."""
