-- Migration 0001: the emowatch ClickHouse schema as it was before versioned migrations (the former
-- infra/clickhouse/schema.sql). `{db}` is replaced by the configured database. Statements are separated by
-- lines holding only ';'. Never edit an applied migration (its checksum is recorded): add a new file.
CREATE DATABASE IF NOT EXISTS {db}
;
-- One row per scored chunk (utterance granularity); frame logits kept for frame granularity.
-- ReplacingMergeTree on the natural key: a chunk re-scored after a crash (at-least-once) collapses
-- into one row; insert_deduplication_token makes retried batches no-ops right away.
CREATE TABLE IF NOT EXISTS {db}.scores
(
    business_line LowCardinality(String),
    call_id       String,
    role          LowCardinality(String),
    seq           Int64,
    start_ms      Int64,
    ts            DateTime64(3, 'UTC') COMMENT 'event time of the chunk start',
    frame_ms      UInt16,
    n_frames      UInt16,
    labels        Array(LowCardinality(String)),
    probs         Array(Float32) COMMENT 'softmax(mean(frame logits)) in label order',
    top_emotion   LowCardinality(String),
    top_prob      Float32,
    logits        Array(Float32) COMMENT 'n_frames x len(labels), row-major',
    embedding     Array(Float32),
    gap_before    Bool,
    end_of_call   Bool,
    model         LowCardinality(String),
    model_version LowCardinality(String),
    attributes    Map(LowCardinality(String), String),
    kafka_partition UInt16,
    kafka_offset  Int64,
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (business_line, call_id, ts, role, seq)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000
;
-- Scores of `emowatch rescore --store` (another model over the same audio). The columns of `scores`, but
-- model_version is in the key: rows of several models for one chunk coexist, and never replace production's
-- rows in `scores` (whose key has no model). Batches carry insert_deduplication_token = model version + the
-- batch's chunks, so a rerun of the same rescore inserts nothing new.
CREATE TABLE IF NOT EXISTS {db}.scores_rescored AS {db}.scores
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (model_version, business_line, call_id, ts, role, seq)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 1000
;
CREATE TABLE IF NOT EXISTS {db}.alerts
(
    business_line LowCardinality(String),
    call_id       String,
    ts            DateTime64(3, 'UTC') COMMENT 'event time of this alert event',
    alert_id      String,
    status        LowCardinality(String),
    rule_id       LowCardinality(String),
    rule_version  LowCardinality(String),
    rule_set      LowCardinality(String),
    priority      LowCardinality(String),
    action        LowCardinality(String),
    role          LowCardinality(String),
    emotions      Array(LowCardinality(String)),
    value         Float64,
    threshold     Float64,
    started_ms    Int64,
    fired_ms      Int64,
    channels      Array(LowCardinality(String)),
    labels        Map(LowCardinality(String), String),
    replay_id     LowCardinality(String) COMMENT 'empty in production',
    kafka_partition UInt16,
    kafka_offset  Int64,
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (business_line, call_id, ts, alert_id, status, replay_id)
TTL toDateTime(ts) + INTERVAL 730 DAY
SETTINGS non_replicated_deduplication_window = 1000
;
-- One row per replay (`emowatch replay`): what it covered and what it found; its alerts are the `alerts` rows
-- with the same replay_id.
CREATE TABLE IF NOT EXISTS {db}.replays
(
    replay_id     String,
    started_at    DateTime64(3, 'UTC'),
    finished_at   DateTime64(3, 'UTC'),
    source        LowCardinality(String) COMMENT 'kafka or clickhouse',
    scores_topic  String COMMENT 'the scores topic read (kafka source)',
    window_from   DateTime64(3, 'UTC') COMMENT 'calls that started at or after this',
    window_to     Nullable(DateTime64(3, 'UTC')) COMMENT 'messages before this; NULL = to the end of the data',
    business_line LowCardinality(String),
    calls_filter  Array(String) COMMENT 'the --calls given, empty = all',
    rule_set      LowCardinality(String),
    rule_version  LowCardinality(String),
    rules_file    String,
    model_versions Array(String) COMMENT 'name:version of the scores read',
    sweep         String COMMENT 'RULE.PARAM=START:STOP:STEP of a sweep, else empty',
    messages      UInt64 COMMENT 'score messages evaluated',
    calls         UInt64,
    alerts        UInt64 COMMENT 'FIRING events',
    events        UInt64 COMMENT 'FIRING and RESOLVED events',
    offsets_fallback Bool COMMENT 'the broker answered offsets by time wrongly: the topic was scanned from its start',
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(inserted_at)
ORDER BY replay_id
;
-- Per-minute emotion aggregate for dashboards.
CREATE TABLE IF NOT EXISTS {db}.emotion_minute
(
    business_line LowCardinality(String),
    minute        DateTime('UTC'),
    top_emotion   LowCardinality(String),
    chunks        UInt64,
    prob_sum      Float64
)
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (business_line, minute, top_emotion)
TTL minute + INTERVAL 400 DAY
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.emotion_minute_mv TO {db}.emotion_minute AS
SELECT business_line, toStartOfMinute(ts) AS minute, top_emotion, count() AS chunks, sum(top_prob) AS prob_sum
FROM {db}.scores GROUP BY business_line, minute, top_emotion
;
-- One row per call: first/last chunk, chunks, mean probabilities (deduplicated at query time).
CREATE VIEW IF NOT EXISTS {db}.calls AS
SELECT business_line, call_id,
       min(ts) AS first_ts, max(ts) AS last_ts, count() AS chunks,
       any(labels) AS labels,
       arrayMap(x -> x / count(), sumForEach(probs)) AS mean_probs,
       labels[indexOf(mean_probs, arrayMax(mean_probs))] AS top_emotion,
       arrayMax(mean_probs) AS top_prob,
       max(end_of_call) AS ended
FROM {db}.scores FINAL
GROUP BY business_line, call_id
;
-- The seed system's `emotion_records` table as a view, so its example queries keep working:
--   SELECT * FROM emotion_records WHERE alert_triggered=1 AND toDate(timestamp)=today() ORDER BY timestamp DESC LIMIT 10;
--   SELECT emotion, count() FROM emotion_records WHERE emotion NOT IN ('unknown','other') GROUP BY emotion;
CREATE VIEW IF NOT EXISTS {db}.emotion_records AS
SELECT cityHash64(s.call_id, s.role, s.seq) AS id,
       s.ts AS timestamp,
       s.call_id AS audio_id,
       s.role AS role,
       s.top_emotion AS emotion,
       s.top_prob AS confidence,
       'utterance' AS granularity,
       '' AS embedding_path,
       arrayExists(f -> f >= s.start_ms AND f < s.start_ms + s.n_frames * s.frame_ms, a.fired) AS alert_triggered
FROM {db}.scores AS s FINAL
LEFT JOIN (SELECT call_id, role, groupArray(fired_ms) AS fired FROM {db}.alerts FINAL
           WHERE status = 'FIRING' GROUP BY call_id, role) AS a
       ON s.call_id = a.call_id AND s.role = a.role
