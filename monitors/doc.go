// Package monitors watches a served model online: data drift of every
// feature against the reference profile stored with the champion version,
// and accuracy once delayed labels arrive. A breach that holds publishes an
// alert to driftline.alerts and a retrain request to driftline.retrain, with
// a cooldown so one shift produces one retrain.
//
// Online today (monitor.go): PSI per feature and on the score over
// count-based sliding windows; rolling ROC AUC and log loss over the
// champion's latest labels; incidents with consecutive-breach confirmation
// and a cooldown.
//
// Built and verified, not yet wired into the Monitor (issue 4): the drift
// statistics of drift.go (KS with p-value, Jensen-Shannon, Wasserstein and
// its Evidently normalisation, chi-square with p-value), checked against
// SciPy values in testdata/drift, and the change detectors of detectors.go
// (ADWIN, Page-Hinkley, DDM), ported from River and checked against River's
// published detection indices. They are pure functions and types so the
// Monitor can adopt them without changing its plumbing. Note for that work:
// with River's defaults DDM false-alarms often on stationary streams and
// Page-Hinkley's threshold suits low-variance inputs only (see
// detectors_test.go for the measured rates).
//
// The package must not import features or trainers: it reads their records
// from topics.
package monitors
