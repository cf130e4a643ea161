-- Labels (schemas.Label): the served vector with its outcome, the version and
-- score that served it (version 0: cold start, nothing scored it). Training
-- sets are reproduced from this table (deploy/clickhouse/queries.sql).
CREATE TABLE IF NOT EXISTS {database}.labels (
    model String,
    version UInt32,
    score Float64,
    event_id String,
    event_time DateTime,
    event_time_ms UInt64,
    user_id String,
    session_id String,
    device String,
    country String,
    referrer String,
    `values` Array(Float64),
    label UInt8,
    reason String,
    label_time DateTime,
    label_time_ms UInt64,
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (model, event_id)
