"""emowatch.streams.kafka."""
