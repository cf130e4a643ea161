-- Storefront events of the three input topics, one row per event, as the
-- contract defines them (schemas.Event; the JSON Schema files). Absent
-- optional numbers are stored as 0; `ts` is the event time, `ts_ms` the same
-- in Unix milliseconds. ReplacingMergeTree on event_id removes redelivered
-- duplicates at merge time; queries read with FINAL or aggregate by event_id.
CREATE TABLE IF NOT EXISTS {database}.events (
    event_id String,
    type String,
    ts DateTime,
    ts_ms UInt64,
    user_id String,
    session_id String,
    schema_version UInt16,
    device String,
    country String,
    referrer String,
    page String,
    query String,
    category String,
    product_id String,
    price Float64,
    quantity UInt32,
    cart_value Float64,
    items UInt32,
    order_id String,
    amount Float64,
    currency String,
    kafka_topic String,
    kafka_partition UInt32,
    kafka_offset UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY event_id
