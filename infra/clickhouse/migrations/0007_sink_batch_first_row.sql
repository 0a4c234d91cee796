-- Migration 0007: the identity of the record at a recorded batch cut's first offset (streams/sink/batches.py,
-- record_key). A restarted sink re-cuts a batch at its recorded offsets only when the record it re-reads at the
-- first offset is that one: in a deleted and re-created topic (or after a local broker lost its memory) offsets
-- start again at 0, and a cut recorded for the old records would hold the new ones until that many arrive.
-- Records written before this migration have '' and are taken as before (offsets alone).
ALTER TABLE {db}.sink_batches ADD COLUMN IF NOT EXISTS first_key String DEFAULT ''
    COMMENT 'rows_digest of the record at first_offset (- when it was dead-lettered); empty before migration 0007'
