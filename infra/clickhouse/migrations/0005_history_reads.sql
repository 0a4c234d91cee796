-- Migration 0005: read paths for a long history (`emowatch bench history`, docs/benchmarks.md "History at scale").
-- Per chunk, the sum over its frames of each label's logit (label order), stored at insert: the console's call
-- list (HistoryReader.calls) computes each role's utterance, softmax(mean frame logit), from these 9 numbers per
-- chunk instead of reading and summing the chunk's 450 logits (100 calls of a 1M-chunk history: 120 MB of logits).
-- The same values the reader computed before (arraySum of Float32 is Float64). Not in `SELECT *`.
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS logit_sums Array(Float64)
    MATERIALIZED arrayMap(k -> arraySum(arrayMap(f -> logits[f * length(labels) + k], range(n_frames))),
                          range(1, length(labels) + 1))
    COMMENT 'per label, the sum of its logit over the chunk frames'
;
-- Chunks stored before this migration: computed from their logits when read until this background mutation has
-- written the column into their parts (a MATERIALIZE statement: a cluster renders it ON CLUSTER on the local table).
ALTER TABLE {db}.scores MATERIALIZE COLUMN logit_sums
