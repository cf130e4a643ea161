// Package features is the stage between the storefront topics and the
// model: it keeps per-session and per-user state over event time, builds a
// feature vector on every trigger event, scores it with the champion model
// (swapped atomically when the registry moves the alias), and joins delayed
// outcomes into labels.
//
// Feature values come from the window engine (features/window), one per
// assigned partition, computing the YAML definitions
// (features/window/purchase_propensity.yaml, or Config.FeaturesFile). The
// stage keeps what is not a feature: a session's segments and purchases,
// pending labels, the input clocks.
//
// State survives (issue 3): every key a batch changes (the engine's
// wu/<user> and ws/<session> and its clock wm, the stage's s/<session>,
// p/<pending event>, and one c record per partition for the input clocks)
// is written once per batch to the compacted changelog
// driftline.state.<group>, partition N holding the state of input partition
// N (changelog.go: a compact binary encoding, opaque (key, value) records).
// Processing is exactly-once: each polled batch is one Kafka transaction
// (kgo.GroupTransactSession) with its outputs, changelog records and input
// offsets. A partition's state is restored from its changelog before its
// first input is handled, after an assignment and after an aborted
// transaction (which rewinds the inputs: the state the aborted batch
// applied is dropped, never replayed on top of). Processor.handle is still
// the one place a record's effects are decided.
//
// Watermark: per partition number, the minimum over the input topics seen
// on that partition of the maximum event time, minus the allowed lateness
// (an input idle for IdleTimeout stops holding it back). It drives the
// window engine (window.Config.CallerWatermark): an event before it goes to
// the DLQ with reason late, and it resolves negative labels.
// Input topics must be co-partitioned (same partition count, keyed by
// user_id), which is why the consumer group uses the range balancer.
//
// The package must not import monitors or trainers: it talks to them through
// topics.
package features
