// Package monitors watches a served model online and offline: data drift of
// every feature and of the score against the reference profile stored with
// the champion version, accuracy once delayed labels arrive, change
// detectors on the error stream, all of it also per segment, and an alert
// policy that turns findings into alerts people can trust and into retrain
// requests the trainers act on.
//
// Online (the monitor role, monitor.go and the files beside it):
//
//   - column.go: a count-based sliding window per feature against its
//     reference: bin counts (PSI, Jensen–Shannon, chi-square with p-value)
//     and counts over the reference's DDSketch buckets (KS with p-value,
//     normalised Wasserstein), each updated in O(log bins) per value and
//     evaluated in one pass over the buckets. The method per feature is
//     Evidently's default choice (by feature type and reference size),
//     overridable per feature; online distance thresholds are stricter than
//     Evidently's batch ones (measured: docs/monitors.md).
//   - accuracy: rolling ROC AUC, log loss, Brier, expected calibration
//     error, precision and recall at the decision threshold over the
//     champion's latest labels (internal/accuracy), label lag as a
//     histogram.
//   - errors.go: ADWIN and Page-Hinkley (DDM opt-in) on the per-label error.
//   - segments.go: the same per value of device, country and referrer, with
//     a minimum sample size, and fairness alerts for a segment whose AUC
//     falls a gap below the overall.
//   - policy.go: per dedup key a breach must hold for N evaluations, fires
//     once, resolves (with hysteresis) when it clears, fires again as a new
//     incident if it still holds a cooldown later; Bonferroni over the
//     p-values of features x segments; one retrain request per incident with
//     an idempotency key, a cooldown per champion and a budget per hour (a
//     request over it is held until it frees, while its incident is open).
//   - webhook.go: an optional forwarder of driftline.alerts to a
//     Slack-compatible webhook, with retry.
//
// Offline (offline.go, drift.go): `driftline drift` compares two JSON-lines
// files with the statistics of drift.go, each checked against SciPy
// (testdata/drift). detectors.go holds the River ports.
//
// The Monitor's state is owned by its Run goroutine; only the champion the
// registry feed announces crosses goroutines (an atomic pointer). It keeps
// constant memory per feature and segment and refills after a restart; the
// incidents open before it are taken over from the alerts topic
// (restore.go).
//
// The package must not import features or trainers: it reads their records
// from topics.
package monitors
