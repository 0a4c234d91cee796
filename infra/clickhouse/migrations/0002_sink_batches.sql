-- Migration 0002: the sink's record of the batch it writes per partition (streams/sink/batches.py).
-- Written before each insert; after a crash the restarted sink cuts the re-read batch at the same offsets,
-- so the retried insert carries the same insert_deduplication_token and is dropped if it had landed.
-- Only the newest row per (group_id, topic, partition) matters (read with ORDER BY written_at DESC LIMIT 1).
CREATE TABLE IF NOT EXISTS {db}.sink_batches
(
    group_id      String,
    topic         String,
    partition     UInt32,
    first_offset  Int64,
    last_offset   Int64,
    rows          UInt32,
    written_at    DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(written_at)
ORDER BY (group_id, topic, partition)
