-- Migration 0003: the seed's data complete - the agent as a column, frame granularity (200 ms steps, and
-- 20 ms frames on demand), real embedding paths, and the seed's `emotion_records` over all of it.
-- The agent (坐席) is the call attribute `agent_id` (gateway: attr.agent_id=... or X-Emowatch-Attr-Agent_id).
-- A DEFAULT column: rows stored before this migration get it computed from their attributes when read.
ALTER TABLE {db}.scores ADD COLUMN IF NOT EXISTS agent LowCardinality(String) DEFAULT attributes['agent_id'] AFTER call_id
;
ALTER TABLE {db}.scores_rescored ADD COLUMN IF NOT EXISTS agent LowCardinality(String) DEFAULT attributes['agent_id'] AFTER call_id
;
-- Frame granularity: one row per 200 ms step of every stored chunk (softmax of the mean logits of the step's
-- 10 frames, as models/timeline.step_probs and the console compute it), filled by a materialized view at
-- insert time. An insert into `scores` dropped by its insert_deduplication_token is not passed to the view, so a
-- retried batch adds no step rows either. ReplacingMergeTree on the step's natural key as for `scores`.
CREATE TABLE IF NOT EXISTS {db}.emotion_steps
(
    business_line LowCardinality(String),
    agent         LowCardinality(String),
    call_id       String,
    role          LowCardinality(String),
    seq           Int64,
    step          UInt16 COMMENT 'index of the 200 ms step within its chunk',
    start_ms      Int64 COMMENT 'call time of the step start',
    ts            DateTime64(3, 'UTC') COMMENT 'event time of the step start',
    duration_ms   UInt16 COMMENT '200, less for the last step of a chunk whose frames do not fill it',
    emotion       LowCardinality(String),
    confidence    Float32,
    probs         Array(Float32) COMMENT 'in the order of the chunk labels',
    model_version LowCardinality(String),
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (business_line, call_id, ts, role, seq, step)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.emotion_steps_mv TO {db}.emotion_steps AS
SELECT business_line, agent, call_id, role, seq, step,
       step_start_ms AS start_ms,
       step_ts AS ts,
       step_duration_ms AS duration_ms,
       labels[indexOf(step_probs, arrayMax(step_probs))] AS emotion,
       arrayMax(step_probs) AS confidence,
       step_probs AS probs,
       model_version
FROM
(
    SELECT business_line, agent, call_id, role, seq, labels, model_version, step,
           start_ms + step * 200 AS step_start_ms,
           ts + toIntervalMillisecond(step * 200) AS step_ts,
           toUInt16(least(n_frames * frame_ms - step * 200, 200)) AS step_duration_ms,
           length(labels) AS n_labels, intDiv(200, frame_ms) AS per_step,
           arrayMap(c -> arrayAvg(arrayMap(f -> logits[f * n_labels + c],
                                            range(step * per_step, least(step * per_step + per_step, n_frames)))),
                    range(1, n_labels + 1)) AS step_mean,
           arrayMap(x -> exp(x - arrayMax(step_mean)), step_mean) AS step_exp,
           arrayMap(x -> toFloat32(x / arraySum(step_exp)), step_exp) AS step_probs
    FROM {db}.scores
    ARRAY JOIN range(intDiv(n_frames * frame_ms + 199, 200)) AS step
    WHERE n_frames > 0 AND frame_ms > 0 AND length(logits) = n_frames * length(labels)
)
;
-- 20 ms granularity, computed when read (50 rows per second of audio are not worth storing: the logits are).
CREATE OR REPLACE VIEW {db}.emotion_frames AS
SELECT business_line, agent, call_id, role, seq, frame,
       frame_start_ms AS start_ms,
       frame_ts AS ts,
       labels[indexOf(frame_probs, arrayMax(frame_probs))] AS emotion,
       arrayMax(frame_probs) AS confidence,
       frame_probs AS probs
FROM
(
    SELECT business_line, agent, call_id, role, seq, labels, frame,
           start_ms + frame * frame_ms AS frame_start_ms,
           ts + toIntervalMillisecond(frame * frame_ms) AS frame_ts,
           arraySlice(logits, frame * length(labels) + 1, length(labels)) AS frame_logits,
           arrayMap(x -> exp(x - arrayMax(frame_logits)), frame_logits) AS frame_exp,
           arrayMap(x -> toFloat32(x / arraySum(frame_exp)), frame_exp) AS frame_probs
    FROM {db}.scores FINAL
    ARRAY JOIN range(n_frames) AS frame
)
;
-- `emowatch export embeddings` writes one .npy per chunk and records its path here.
CREATE TABLE IF NOT EXISTS {db}.embedding_files
(
    call_id     String,
    role        LowCardinality(String),
    seq         Int64,
    path        String COMMENT 'the .npy file (absolute path on the host that exported it)',
    dims        UInt32,
    exported_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(exported_at)
ORDER BY (call_id, role, seq)
;
-- One row per call, now with its agent.
CREATE OR REPLACE VIEW {db}.calls AS
SELECT business_line, call_id, any(agent) AS agent,
       min(ts) AS first_ts, max(ts) AS last_ts, count() AS chunks,
       any(labels) AS labels,
       arrayMap(x -> x / count(), sumForEach(probs)) AS mean_probs,
       labels[indexOf(mean_probs, arrayMax(mean_probs))] AS top_emotion,
       arrayMax(mean_probs) AS top_prob,
       max(end_of_call) AS ended
FROM {db}.scores FINAL
GROUP BY business_line, call_id
;
-- The seed's table, both granularities: 'utterance' rows (one per stored chunk) and 'frame' rows (one per
-- 200 ms step), with the agent, business line and the exported embedding's path ('' when not exported).
-- Its example queries keep working; add granularity = 'utterance' to count chunks only.
CREATE OR REPLACE VIEW {db}.emotion_records AS
SELECT cityHash64(r.call_id, r.role, r.seq, r.step) AS id,
       r.ts AS timestamp,
       r.call_id AS audio_id,
       r.business_line AS business_line,
       r.agent AS agent,
       r.role AS role,
       r.emotion AS emotion,
       r.confidence AS confidence,
       r.granularity AS granularity,
       if(r.granularity = 'utterance', e.path, '') AS embedding_path,
       toBool(arrayExists(f -> f >= r.start_ms AND f < r.end_ms, a.fired)) AS alert_triggered
FROM
(
    SELECT call_id, role, seq, -1 AS step, ts, business_line, agent, top_emotion AS emotion, top_prob AS confidence,
           'utterance' AS granularity, start_ms, start_ms + n_frames * frame_ms AS end_ms
    FROM {db}.scores FINAL
    UNION ALL
    SELECT call_id, role, seq, toInt32(step) AS step, ts, business_line, agent, emotion, confidence,
           'frame' AS granularity, start_ms, start_ms + duration_ms AS end_ms
    FROM {db}.emotion_steps FINAL
) AS r
LEFT JOIN (SELECT call_id, role, seq, argMax(path, exported_at) AS path FROM {db}.embedding_files
           GROUP BY call_id, role, seq) AS e
       ON r.call_id = e.call_id AND r.role = e.role AND r.seq = e.seq
LEFT JOIN (SELECT call_id, role, groupArray(fired_ms) AS fired FROM {db}.alerts FINAL
           WHERE status = 'FIRING' AND replay_id = '' GROUP BY call_id, role) AS a
       ON r.call_id = a.call_id AND r.role = a.role
