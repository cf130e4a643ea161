// Package trainers closes the loop: a worker on Watermill's router (retry,
// poison queue, recoverer) takes retrain requests, builds a training set
// from recent labelled vectors, trains a challenger, gates it against the
// champion on a time-held-out slice, and writes the version, and the alias
// move that follows a passed gate, to the registry topic.
//
// What it owns:
//   - Worker: one training per idempotency key, at most MaxConcurrent at
//     once; bootstrap of v1 on cold start.
//   - Training sets: a buffer replayed from the labels topic (the served
//     vectors, point-in-time correct), LabelReplay (the labels topic by
//     timestamp) and ClickHouseSource (the sink's labels table, FINAL, in
//     the same order, so the same fingerprint) behind the TrainingSource
//     interface, and the dataset Fingerprint, with its source, recorded on
//     every version. With ClickHouse configured the worker trains on its
//     rows once they include every row the replay has for the window, and
//     falls back to the replay, with a warning, when ClickHouse is down or
//     still lags after ClickHouseConfig.Wait: the loop never waits on the
//     analytics store.
//   - Backends: CPU (internal/logreg) and Command, the file-in, file-out
//     trainer contract that trainers/gpu/train.py (PyTorch) and
//     `driftline train --contract` implement; the "gpu" backend is used
//     when its device probe succeeds, else the CPU.
//   - Gate (TrainWith), and Shadow: shadow scoring of a candidate beside the
//     champion, promotion on realised accuracy, and probation with
//     automatic rollback.
//   - Registry: the writer of driftline.models. Every alias move has its own
//     key (<model>@<alias>#<seq>~<writer>), so the compacted topic keeps the
//     whole alias history and a rollback is one record. The writer id makes
//     the key unique even when two writers (replicas, the CLI) propose the
//     same seq at once; history order is the log's (one partition), so
//     every reader agrees on it. Chosen over routing every move through the
//     lease holder (the CLI would need a live trainer) and over
//     detect-and-republish (compaction can run before the republish). Every decision is an
//     alias move (or, for a gate that rejected, the version record) with
//     its evidence. See docs/trainers.md.
//
// Several replicas in one consumer group are safe: a training reserves its
// version number, and claims its request's idempotency key, on the
// registry topic before it starts (Registry.Reserve: the first reservation
// of a number in the log wins it), and the Shadow component of only the
// replica holding the decision lease (a consumer group on the one-partition
// registry topic) scores and decides. A promotion also moves the retired
// alias and a gate the challenger alias.
//
// The package must not import features or monitors: it reads their records
// from topics.
package trainers
