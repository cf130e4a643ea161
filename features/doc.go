// Package features is the stage between the storefront topics and the
// model: it keeps per-session and per-user state over event time, builds a
// feature vector on every trigger event, scores it with the champion model
// (swapped atomically when the registry moves the alias), and joins delayed
// outcomes into labels.
//
// First cut (issue 2): state is in memory, per assigned partition, and lost
// on restart; processing is at-least-once (offsets are committed after the
// outputs are acknowledged). Event-time windows with changelogs and
// exactly-once transactions are issue 3's seam: Processor.handle is the one
// place a record's effects are decided.
//
// Watermark: per partition number, the minimum over the input topics seen
// on that partition of the maximum event time, minus the allowed lateness.
// Input topics must be co-partitioned (same partition count, keyed by
// user_id), which is why the consumer group uses the range balancer.
//
// The package must not import monitors or trainers: it talks to them through
// topics.
package features
