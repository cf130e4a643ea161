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
//     timestamp) behind the TrainingSource interface, and the dataset
//     Fingerprint recorded on every version.
//   - Backends: CPU (internal/logreg) and Command, the file-in, file-out
//     trainer contract that trainers/gpu/train.py (PyTorch) and
//     `driftline train --contract` implement; the "gpu" backend is used
//     when its device probe succeeds, else the CPU.
//   - Gate (TrainWith), and Shadow: shadow scoring of a candidate beside the
//     champion, promotion on realised accuracy, and probation with
//     automatic rollback.
//   - Registry: the writer of driftline.models. Every alias move has its own
//     key (<model>@<alias>#<seq>), so the compacted topic keeps the whole
//     alias history and a rollback is one record. Every decision is an
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
// Not yet: ClickHouse training sets (the interface exists).
//
// The package must not import features or monitors: it reads their records
// from topics.
package trainers
