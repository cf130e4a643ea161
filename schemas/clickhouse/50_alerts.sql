-- Alerts (schemas.Alert): every drift, prediction-drift and accuracy breach
-- with its statistic's value, keyed by the alert's own id.
CREATE TABLE IF NOT EXISTS {database}.alerts (
    id String,
    kind String,
    status String,
    dedup_key String,
    incident String,
    severity String,
    model String,
    version UInt32,
    feature String,
    segment String,
    statistic String,
    value Float64,
    threshold Float64,
    comparison String,
    window_from DateTime,
    window_from_ms UInt64,
    window_to DateTime,
    window_to_ms UInt64,
    samples UInt32,
    event_time DateTime,
    event_time_ms UInt64,
    fired_at DateTime,
    fired_at_ms UInt64,
    evidence_keys Array(String),
    evidence_values Array(Float64)
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY id
