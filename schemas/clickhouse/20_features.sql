-- Feature vectors (schemas.FeatureVector), one per scored trigger event: the
-- values the model saw, in the order of the model version's `features`
-- (model_versions.features; not repeated per row).
CREATE TABLE IF NOT EXISTS {database}.features (
    model String,
    event_id String,
    event_type String,
    event_time DateTime,
    event_time_ms UInt64,
    user_id String,
    session_id String,
    device String,
    country String,
    referrer String,
    `values` Array(Float64),
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (model, event_id)
