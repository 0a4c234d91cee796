-- Migration 0004: the per-minute aggregate drops a retried insert too. A batch retried with the same
-- insert_deduplication_token is dropped by `scores`, but the materialized view still passes the block on to its
-- target, and `emotion_minute` (SummingMergeTree, no deduplication window) summed it a second time; with a
-- window the target drops the repeated block as `emotion_steps` does. (On a cluster the Replicated tables
-- deduplicate by themselves: the renderer omits this statement.)
ALTER TABLE {db}.emotion_minute MODIFY SETTING non_replicated_deduplication_window = 1000
