"""Replays: re-evaluate rule sets over stored scores (Kafka or ClickHouse), diff against production, sweep a
rule parameter. The pure parts live here; the Kafka reader is ``streams/kafka/replay_source.py`` and the
command ``streams/cli/replay.py``. Reference: docs/replay.md."""
