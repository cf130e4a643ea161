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

-- name: accuracy_by_version_device_hour
-- Realised accuracy of each served model version by device and hour of
-- prediction time, from the labels (version 0, cold start, left out): ROC
-- AUC by the rank-sum formula (Mann-Whitney U), log loss, Brier score, and
-- mean score beside the positive rate (calibration).
SELECT
    version,
    device,
    hour,
    n,
    positives,
    round(mean_score, 4) AS mean_score,
    round(positive_rate, 4) AS positive_rate,
    round(log_loss, 4) AS log_loss,
    round(brier, 4) AS brier,
    if(positives = 0 OR positives = n, nan,
       round((arraySum(arrayMap((l, r) -> l * r, ranked, arrayEnumerate(ranked))) - positives * (positives + 1) / 2)
             / (positives * (n - positives)), 4)) AS roc_auc
FROM
(
    SELECT
        version,
        device,
        toStartOfHour(event_time) AS hour,
        count() AS n,
        sum(label) AS positives,
        avg(score) AS mean_score,
        avg(label) AS positive_rate,
        -avg(label * log(greatest(score, 1e-15)) + (1 - label) * log(greatest(1 - score, 1e-15))) AS log_loss,
        avg((score - label) * (score - label)) AS brier,
        arrayMap(x -> tupleElement(x, 2), arraySort(x -> tupleElement(x, 1), groupArray((score, label)))) AS ranked
    FROM {database}.labels FINAL
    WHERE version > 0
    GROUP BY version, device, hour
) AS a
ORDER BY hour, version, device

-- name: feature_drift_by_hour
-- Each feature's hourly mean on the vectors a version served, beside the
-- mean and standard deviation of that version's training set: the
-- standardised shift (mean - reference mean) / reference std says how far
-- the live distribution moved, hour by hour, without waiting for an alert.
SELECT
    hour,
    version,
    feature,
    count() AS n,
    round(avg(value), 4) AS mean,
    round(any(ref_mean), 4) AS reference_mean,
    round((avg(value) - any(ref_mean)) / greatest(any(ref_std), 1e-9), 4) AS standardized_shift
FROM
(
    SELECT hour, version, value, feature, ref_mean, ref_std
    FROM
    (
        SELECT toStartOfHour(event_time) AS hour, version, `values` AS vs, features AS fs, mean AS ms, std AS ss
        FROM
        (
            SELECT model, version, event_time, `values`
            FROM {database}.labels FINAL
            WHERE version > 0
        ) AS l
        ALL INNER JOIN
        (
            SELECT model, version, features, mean, std
            FROM {database}.model_versions FINAL
        ) AS v USING (model, version)
    ) AS served
    ARRAY JOIN vs AS value, fs AS feature, ms AS ref_mean, ss AS ref_std
) AS per_feature
GROUP BY hour, version, feature
ORDER BY feature, hour, version

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
