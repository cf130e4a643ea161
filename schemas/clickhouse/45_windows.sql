-- Window results (schemas.WindowResult), one row per closed tumbling,
-- hopping or session window of one feature for one user or session, from
-- driftline.windows; session windows carry their session's segments (empty
-- in user windows). The sorting key is the window's identity (its Kafka
-- key), so a row the sink wrote twice (redelivery) collapses to one; queries
-- read FINAL. Sorted by what analysts filter on first: definitions, feature,
-- entity, key, then the window.
CREATE TABLE IF NOT EXISTS {database}.windows (
    definitions String,
    model String,
    feature String,
    aggregation String,
    kind String,
    entity String,
    `key` String,
    device String,
    country String,
    referrer String,
    window_from DateTime,
    window_from_ms UInt64,
    window_to DateTime,
    window_to_ms UInt64,
    value Float64,
    events UInt32,
    watermark DateTime,
    watermark_ms UInt64,
    input_partition UInt32,
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(window_to)
ORDER BY (definitions, feature, entity, `key`, window_from_ms, window_to_ms)
