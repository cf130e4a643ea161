-- Dead letters (driftline.dlq): the rejected record's bytes and the reason,
-- keyed by where the rejected record came from.
CREATE TABLE IF NOT EXISTS {database}.dead_letters (
    source_topic String,
    source_partition UInt32,
    source_offset UInt64,
    reason String,
    field String,
    key String,
    value String,
    original_bytes UInt64,
    dead_lettered_at DateTime,
    dead_lettered_at_ms UInt64
) ENGINE = ReplacingMergeTree
ORDER BY (source_topic, source_partition, source_offset)
