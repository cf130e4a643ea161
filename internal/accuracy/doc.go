// Package accuracy is the math of judging a probabilistic classifier on
// labelled outcomes: ROC AUC by ranks, log loss, Brier score, expected
// calibration error and precision/recall at a decision threshold, each
// checked against scikit-learn (testdata/accuracy). The trainers' gate, the
// monitors' rolling accuracy and the demo's summary all use it, so the
// three agree by construction. Pure functions, no I/O.
package accuracy
