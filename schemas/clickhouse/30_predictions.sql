-- Predictions (schemas.Prediction): model, version and score per scored
-- event, with the event's segments. A shadow candidate's prediction of the
-- same event is its own row (shadow in the key), never merged with the one
-- served.
CREATE TABLE IF NOT EXISTS {database}.predictions (
    model String,
    version UInt32,
    score Float64,
    event_id String,
    event_type String,
    event_time DateTime,
    event_time_ms UInt64,
    user_id String,
    session_id String,
    device String,
    country String,
    referrer String,
    scored_at DateTime,
    scored_at_ms UInt64,
    shadow UInt8,
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (model, event_id, shadow)
