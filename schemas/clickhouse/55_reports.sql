-- Reports (schemas.Report): one row per statistic of every monitor
-- evaluation (drift and prediction drift per feature, accuracy per metric,
-- all traffic and per segment), breached or not. The sorting key is a
-- function of the report's deterministic id (model, version, kind, segment,
-- feature, statistic and the evaluation's event time), so a report the sink
-- wrote twice (redelivery) collapses to one row; queries read FINAL. Sorted
-- by what analysts filter on first: model, kind, feature, statistic.
-- p_value is nan where the statistic has none (distances, accuracy).
CREATE TABLE IF NOT EXISTS {database}.reports (
    id String,
    kind String,
    model String,
    version UInt32,
    segment String,
    feature String,
    statistic String,
    method String,
    value Float64,
    p_value Float64,
    threshold Float64,
    comparison String,
    breached UInt8,
    window_from DateTime,
    window_from_ms UInt64,
    window_to DateTime,
    window_to_ms UInt64,
    samples UInt32,
    reference_rows UInt32,
    event_time DateTime,
    event_time_ms UInt64,
    reported_at DateTime,
    reported_at_ms UInt64
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (model, kind, feature, statistic, segment, version, event_time_ms, id)
