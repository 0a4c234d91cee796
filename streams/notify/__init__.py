"""emowatch.streams.notify: the notifier (alerts topic -> routing, grouping -> people)."""
