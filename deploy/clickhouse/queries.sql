-- Driftline analytics: named queries over the sink's tables
-- (schemas/clickhouse). Each query starts with a "-- name:" line; the lines
-- after it up to the next name are its description and its SQL. Replace
-- {database} with the sink's database (default driftline); @model and
-- @version are clickhouse-go named binds (with clickhouse-client, write the
-- values in). Written for ClickHouse 18.16 and current servers: no CTEs, no
-- window functions, one JOIN per SELECT, every joined subquery aliased.
-- Tables are ReplacingMergeTree keyed by stable ids: every query reads
-- FINAL, so records the sink wrote twice (redelivery) count once.
-- internal/demo/queries_test.go runs every query on the data of a demo run.

-- name: conversion_funnel_by_hour_and_device
-- Sessions by the hour they started and their device, and how many reached
-- each funnel step in order (viewed a product, then added to cart, then
-- started checkout, then purchased): each step counts only sessions that
-- reached every step before it, so the counts never increase.
SELECT
    hour,
    device,
    count() AS sessions,
    countIf(viewed) AS viewed_product,
    countIf(viewed AND carted) AS added_to_cart,
    countIf(viewed AND carted AND checkout) AS started_checkout,
    countIf(viewed AND carted AND checkout AND bought) AS purchased,
    round(purchased / sessions, 4) AS conversion
FROM
(
    SELECT
        session_id,
        toStartOfHour(min(ts)) AS hour,
        anyIf(device, device != '') AS device,
        max(type = 'product_view') AS viewed,
        max(type = 'add_to_cart') AS carted,
        max(type = 'checkout_started') AS checkout,
        max(type = 'purchase') AS bought
    FROM {database}.events FINAL
    GROUP BY session_id
) AS s
GROUP BY hour, device
ORDER BY hour, device

-- name: accuracy_by_version_segment_over_time
-- The monitor's rolling accuracy of each champion version, for all traffic
-- (segment '') and per segment (device=mobile, country=DE, ...), in 10-minute
-- buckets of event time (the label time of the evaluation), from the
-- reports it publishes at every evaluation: ROC AUC, log loss, Brier score,
-- expected calibration error, precision and recall at the decision
-- threshold (each the mean over the bucket's evaluations), the labels in
-- the window, the AUC floor the alert policy judged against (the holdout
-- AUC less the allowed drop; for a segment the overall AUC less the
-- fairness gap) and how many evaluations were below it.
SELECT
    bucket,
    model,
    version,
    segment,
    evaluations,
    labels,
    round(roc_auc, 4) AS roc_auc,
    round(log_loss, 4) AS log_loss,
    round(brier, 4) AS brier,
    round(ece, 4) AS ece,
    round(precision, 4) AS precision,
    round(recall, 4) AS recall,
    round(floor_auc, 4) AS auc_floor,
    breaches
FROM
(
    SELECT
        toDateTime(intDiv(event_time_ms, 600000) * 600) AS bucket,
        model,
        version,
        segment,
        countIf(statistic = 'roc_auc') AS evaluations,
        maxIf(samples, statistic = 'roc_auc') AS labels,
        avgIf(value, statistic = 'roc_auc') AS roc_auc,
        avgIf(value, statistic = 'log_loss') AS log_loss,
        avgIf(value, statistic = 'brier') AS brier,
        avgIf(value, statistic = 'ece') AS ece,
        avgIf(value, statistic = 'precision') AS precision,
        avgIf(value, statistic = 'recall') AS recall,
        avgIf(threshold, statistic = 'roc_auc') AS floor_auc,
        countIf(statistic = 'roc_auc' AND breached = 1) AS breaches
    FROM {database}.reports FINAL
    WHERE kind = 'accuracy'
    GROUP BY bucket, model, version, segment
) AS a
ORDER BY bucket, model, version, segment

-- name: drift_by_feature_over_time
-- How far each feature (and the score: feature 'score', kind
-- prediction_drift) of all traffic drifted from the champion's reference,
-- in 10-minute buckets of event time, from the reports the monitor
-- publishes at every evaluation (a 2000-vector window every 250 vectors):
-- per statistic (the feature's judged method, see method, and PSI beside
-- it) the mean and largest value over the bucket's evaluations, the
-- threshold, how many evaluations breached it, and the earliest event time
-- the bucket's windows reached back to. Segments are in the same table
-- (segment = 'device=mobile', ...).
SELECT
    toDateTime(intDiv(event_time_ms, 600000) * 600) AS bucket,
    model,
    version,
    kind,
    feature,
    statistic,
    any(method) AS judged_by,
    count() AS evaluations,
    round(avg(value), 4) AS mean_value,
    round(max(value), 4) AS max_value,
    round(max(threshold), 4) AS max_threshold,
    countIf(breached = 1) AS breaches,
    min(window_from) AS windows_from
FROM {database}.reports FINAL
WHERE kind IN ('drift', 'prediction_drift') AND segment = ''
GROUP BY bucket, model, version, kind, feature, statistic
ORDER BY feature, statistic, bucket, version

-- name: drift_alerts_by_feature_hour
-- The monitor's own drift statistics over time: per hour of event time and
-- feature, the largest value of each statistic that breached, and how many
-- alerts fired or resolved.
SELECT
    toStartOfHour(event_time) AS hour,
    feature,
    statistic,
    version,
    countIf(status = 'firing') AS fired,
    countIf(status = 'resolved') AS resolved,
    round(max(value), 4) AS max_value,
    any(threshold) AS threshold
FROM {database}.alerts FINAL
WHERE kind IN ('drift', 'prediction_drift')
GROUP BY hour, feature, statistic, version
ORDER BY hour, feature, statistic

-- name: alert_timeline
-- What happened, in wall-clock order: alerts firing and resolving, retrain
-- requests, and every move of a model alias (the champion), with the
-- decision that moved it.
SELECT at, what, model, version, detail
FROM
(
    SELECT
        fired_at AS at,
        fired_at_ms AS at_ms,
        concat('alert ', status, ' ', kind) AS what,
        model,
        version,
        concat(statistic, if(feature = '', '', concat('(', feature, ')')), if(segment = '', '', concat(' [', segment, ']')),
               ' = ', toString(round(value, 3)), ', threshold ', toString(threshold)) AS detail
    FROM {database}.alerts FINAL
    UNION ALL
    SELECT requested_at, requested_at_ms, 'retrain requested', model, from_version, concat(reason, ': ', idempotency_key)
    FROM {database}.retrain_requests FINAL
    UNION ALL
    SELECT at, at_ms, concat(alias, ' moved'), model, version,
           concat('from v', toString(previous), if(decision = '', '', concat(' (', decision, ')')), ': ', reason)
    FROM {database}.model_aliases FINAL
) AS t
ORDER BY at_ms, what

-- name: label_lag_distribution
-- How long outcomes take to become known, by outcome (purchase: a purchase
-- arrived; horizon: none within the horizon), in minutes of event time
-- between the prediction and its label.
SELECT
    reason,
    count() AS labels,
    round(avg(lag_minutes), 2) AS mean_minutes,
    arrayMap(x -> round(x, 2), quantiles(0.5, 0.9, 0.99)(lag_minutes)) AS p50_p90_p99_minutes,
    round(max(lag_minutes), 2) AS max_minutes
FROM
(
    SELECT reason, (toInt64(label_time_ms) - toInt64(event_time_ms)) / 60000 AS lag_minutes
    FROM {database}.labels FINAL
) AS l
GROUP BY reason
ORDER BY reason

-- name: label_lag_histogram
-- The same lags in 5-minute buckets.
SELECT
    reason,
    intDiv(toInt64(label_time_ms) - toInt64(event_time_ms), 300000) * 5 AS from_minute,
    count() AS labels
FROM {database}.labels FINAL
GROUP BY reason, from_minute
ORDER BY reason, from_minute

-- name: training_set_of_version
-- The training set of model @model version @version, reproduced: the
-- labelled vectors of its fingerprint's event-time range (dataset_from ..
-- dataset_to; versions recorded before fingerprints use the training
-- window), in training order (event time, then event id). Hashing each
-- row's values (float64 little-endian) and label byte in this order gives
-- the version's dataset_sha256 (trainers.Fingerprint); the row count is its
-- dataset_rows.
SELECT event_id, event_time_ms, `values`, label
FROM {database}.labels FINAL
WHERE model = @model
  AND event_time_ms >= (
      SELECT if(dataset_rows > 0, dataset_from_ms, training_window_from_ms)
      FROM {database}.model_versions FINAL WHERE model = @model AND version = @version)
  AND event_time_ms <= (
      SELECT if(dataset_rows > 0, dataset_to_ms, training_window_to_ms)
      FROM {database}.model_versions FINAL WHERE model = @model AND version = @version)
ORDER BY event_time_ms, event_id

-- name: model_versions
-- Every version with its lineage, gate decision, holdout metrics and the
-- fingerprint of its training set.
SELECT
    model, version, parent, created_at, backend, rows,
    round(auc, 4) AS auc, round(champion_auc, 4) AS champion_auc, gate_passed, gate_reason,
    training_window_from, training_window_to, dataset_rows, dataset_sha256, retrain_of
FROM {database}.model_versions FINAL
ORDER BY model, version

-- name: dead_letters_by_reason
-- Rejected input by source topic and reason.
SELECT source_topic, reason, count() AS records
FROM {database}.dead_letters FINAL
GROUP BY source_topic, reason
ORDER BY records DESC, source_topic, reason
