// Package monitors watches a served model online: data drift of every
// feature against the reference profile stored with the champion version,
// and accuracy once delayed labels arrive. A breach that holds publishes an
// alert to driftline.alerts and a retrain request to driftline.retrain, with
// a cooldown so one shift produces one retrain.
//
// First cut (issue 2): PSI per feature over a count-based sliding window;
// rolling ROC AUC and log loss over the champion's latest labels. The full
// toolkit (KS, JS, Wasserstein, chi-square, detectors, segments, hysteresis)
// is issue 4's; the statistics live in stats.go as pure functions so they
// can be swapped in without touching the Monitor's plumbing.
//
// The package must not import features or trainers: it reads their records
// from topics.
package monitors
