// Package window is the feature engine of the feature stage: feature
// definitions as data (YAML, see Definitions) and keyed event-time windows
// over them (Engine).
//
// An Engine holds the state of one partition: per-entity state (a user, a
// session) keyed by entity id, in fixed-size slots of a slab, updated by
// events in event time. Windows are tumbling, hopping (sliding), session
// (gap) or lifetime; the watermark is the maximum event time minus the
// allowed lateness; a window is closed and its result emitted when the
// watermark passes its end; an event older than the watermark is rejected
// with ErrLate and not applied. Keys idle longer than their entity's TTL
// whose windows are all closed are dropped and reported as tombstones; the
// number of keys is bounded and an event that would need a key beyond the
// bound is rejected with ErrFull, never applied halfway.
//
// Every key's state has a compact, versioned binary encoding and the engine
// tracks which keys changed since the caller last asked (Changes), so the
// caller can write one changelog record per changed key per transaction and
// rebuild an engine with Restore.
//
// The package does no I/O and owns no goroutines: an Engine is used by one
// goroutine at a time (the partition's). It must not import consumers,
// monitors or trainers; the Processor in package features drives it.
package window
