// Package trainers closes the loop: a worker on Watermill's router (retry,
// poison queue, recoverer) takes retrain requests, builds a training set
// from recent labelled vectors, trains a challenger, gates it against the
// champion on a time-held-out slice, and writes the version, and the
// champion alias move when the gate passes, to the registry topic.
//
// First cut (issue 2): the training set comes from a bounded buffer of the
// most recent labels, replayed from the labels topic (no consumer group, so
// every replica sees them all); the trainer is the Go L2 logistic regression
// of internal/logreg on the CPU. ClickHouse training sets, shadow, probation,
// rollback and the GPU backend are issue 5's.
//
// Cold start: with no champion, the worker asks for its own bootstrap
// training (a retrain request with reason "bootstrap") once MinRows labelled
// vectors exist; the gate passes trivially when there is no champion.
//
// The package must not import features or monitors: it reads their records
// from topics.
package trainers
