-- Migration 0006: voice activity per 20 ms frame (FrameScores v3 `speech`, `energy_db`, `vad`; streams/infer/vad.py).
-- Frame i of a chunk covers [start_ms + i * frame_ms, start_ms + (i + 1) * frame_ms): speech[i + 1] and
-- energy_db[i + 1] (ClickHouse arrays count from 1) belong to the logits of frame i. Empty arrays and vad = '' when
-- not computed (agent setting EMOWATCH_INFER__VAD=off leaves speech empty; rows of agents older than v3 have both
-- empty, as have the rows stored before this migration).
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS speech Array(Float32)
    COMMENT 'per frame speech probability in [0, 1] (n_frames values), empty when not computed'
;
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS energy_db Array(Float32)
    COMMENT 'per frame RMS level in dBFS, floored at -100 (n_frames values), empty when not computed'
;
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS vad LowCardinality(String)
    COMMENT 'detector, version and settings of speech; empty when not computed'
;
ALTER TABLE {db}.scores_rescored ADD COLUMN IF NOT EXISTS speech Array(Float32)
    COMMENT 'per frame speech probability in [0, 1] (n_frames values), empty when not computed'
;
ALTER TABLE {db}.scores_rescored ADD COLUMN IF NOT EXISTS energy_db Array(Float32)
    COMMENT 'per frame RMS level in dBFS, floored at -100 (n_frames values), empty when not computed'
;
ALTER TABLE {db}.scores_rescored ADD COLUMN IF NOT EXISTS vad LowCardinality(String)
    COMMENT 'detector, version and settings of speech; empty when not computed'
;
-- 20 ms granularity with each frame's voice activity: speech and energy_db are NULL where the chunk has none.
CREATE OR REPLACE VIEW {db}.emotion_frames AS
SELECT business_line, agent, call_id, role, seq, frame,
       frame_start_ms AS start_ms,
       frame_ts AS ts,
       labels[indexOf(frame_probs, arrayMax(frame_probs))] AS emotion,
       arrayMax(frame_probs) AS confidence,
       frame_probs AS probs,
       if(length(speech) = n_frames, speech[frame + 1], NULL) AS speech,
       if(length(energy_db) = n_frames, energy_db[frame + 1], NULL) AS energy_db,
       vad
FROM
(
    SELECT business_line, agent, call_id, role, seq, labels, frame, speech, energy_db, vad, n_frames,
           start_ms + frame * frame_ms AS frame_start_ms,
           ts + toIntervalMillisecond(frame * frame_ms) AS frame_ts,
           arraySlice(logits, frame * length(labels) + 1, length(labels)) AS frame_logits,
           arrayMap(x -> exp(x - arrayMax(frame_logits)), frame_logits) AS frame_exp,
           arrayMap(x -> toFloat32(x / arraySum(frame_exp)), frame_exp) AS frame_probs
    FROM {db}.scores FINAL
    ARRAY JOIN range(n_frames) AS frame
)
