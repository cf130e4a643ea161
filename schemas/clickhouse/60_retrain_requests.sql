-- Retrain requests (schemas.RetrainRequest), keyed by their idempotency key.
CREATE TABLE IF NOT EXISTS {database}.retrain_requests (
    idempotency_key String,
    model String,
    from_version UInt32,
    reason String,
    alerts Array(String),
    data_from DateTime,
    data_from_ms UInt64,
    requested_at DateTime,
    requested_at_ms UInt64,
    decided_at DateTime,
    decided_at_ms UInt64
) ENGINE = ReplacingMergeTree
ORDER BY idempotency_key
