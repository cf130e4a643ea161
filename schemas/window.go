package schemas

import (
	"strconv"
	"time"
)

// TopicWindows carries the results of closed windows (WindowResult), keyed
// by AppendWindowKey.
const TopicWindows = "driftline.windows"

// Window kinds of a WindowResult (the feature definitions' window.kind).
const (
	WindowTumbling = "tumbling"
	WindowHopping  = "hopping"
	WindowSession  = "session"
)

// WindowResult is one closed event-time window of one feature for one key,
// published to driftline.windows by the feature stage when the partition's
// watermark passes the window's end: once per window in the committed
// output (it is produced in the same Kafka transaction as the input offsets
// that closed it). Empty windows are not published. Lifetime and event
// features have no windows that close. Subscribers read it as documented in
// docs/windows.md and schemas/jsonschema/driftline.windows.json.
type WindowResult struct {
	// Definitions names the feature definitions set (its YAML name).
	Definitions string `json:"definitions"`
	// Model is the model spec the stage serves with these definitions.
	Model   string `json:"model"`
	Feature string `json:"feature"`
	// Aggregation is the feature's aggregation (count, sum, mean, ...).
	Aggregation string `json:"aggregation"`
	// Kind is WindowTumbling, WindowHopping or WindowSession.
	Kind string `json:"kind"`
	// Entity is user or session; Key is its user_id or session_id.
	Entity string `json:"entity"`
	Key    string `json:"key"`
	// Segments are the session's (device, country, referrer, from its
	// first event) in a window of a session; absent in a user's window,
	// whose sessions may differ, and in a session's window that closes
	// after the stage dropped the session (a gap plus the label horizon
	// past its last event).
	Segments
	// Window is [From, To): tumbling and hopping windows are aligned to
	// their size and hop; a session window runs from its first event to its
	// last event plus the gap.
	Window Window `json:"window"`
	// Value is the feature's value over the window, read at its end (the
	// time_since aggregations measure up to To).
	Value float64 `json:"value"`
	// Events is the number of matching events in the window (>= 1).
	Events int `json:"events"`
	// Watermark is the input partition's watermark when the window closed
	// (>= Window.To).
	Watermark time.Time `json:"watermark"`
	// InputPartition is the storefront partition (user_id hash) whose
	// watermark closed it.
	InputPartition int `json:"input_partition"`
}

// AppendWindowKey appends the Kafka key of a window result:
// <definitions>/<feature>/<entity>/<from ms>/<to ms>/<key>. One window of one
// key has one record key, so log compaction keeps it and ClickHouse's
// ReplacingMergeTree collapses a redelivered copy; the free-form id comes
// last so the key stays unambiguous.
func AppendWindowKey(dst []byte, r *WindowResult) []byte {
	dst = append(dst, r.Definitions...)
	dst = append(dst, '/')
	dst = append(dst, r.Feature...)
	dst = append(dst, '/')
	dst = append(dst, r.Entity...)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, r.Window.From.UnixMilli(), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, r.Window.To.UnixMilli(), 10)
	dst = append(dst, '/')
	return append(dst, r.Key...)
}
