package trainers

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/driftline/driftline/schemas"
)

// labelBuffer keeps the most recent labelled vectors, oldest overwritten.
//
// Labels do not arrive in event-time order: a purchase labels its vector
// within minutes, a negative only once the watermark passes the horizon. The
// newest labels are therefore mostly positives, and training on them would
// learn a biased base rate. A partition's outcomes are known up to the
// latest vector it labelled negative by the horizon; the buffer's complete
// window ends at the earliest of those over the partitions it has seen (a
// lagging partition holds it back). Only rows inside it are handed out.
type labelBuffer struct {
	mu       sync.Mutex
	rows     []schemas.Label
	next     int
	n        int
	horizon  map[int32]time.Time // partition -> latest negative label's event time
	complete time.Time           // min over partitions of horizon
	first    time.Time           // earliest vector event time ever buffered
}

// firstEventTime is the earliest event time of any label buffered so far.
func (b *labelBuffer) firstEventTime() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

func newLabelBuffer(size int) *labelBuffer {
	return &labelBuffer{rows: make([]schemas.Label, size), horizon: map[int32]time.Time{}}
}

// add buffers a label read from a partition of the labels topic.
func (b *labelBuffer) add(l schemas.Label, partition int32) {
	b.mu.Lock()
	b.rows[b.next] = l
	if b.first.IsZero() || l.EventTime.Before(b.first) {
		b.first = l.EventTime
	}
	h, seen := b.horizon[partition]
	if l.Reason == schemas.LabelReasonHorizon && l.EventTime.After(h) {
		h = l.EventTime
	}
	if !seen || l.Reason == schemas.LabelReasonHorizon {
		b.horizon[partition] = h
		b.complete = time.Time{}
		for i, t := range slices.Collect(maps.Values(b.horizon)) {
			if i == 0 || t.Before(b.complete) {
				b.complete = t
			}
		}
	}
	b.next = (b.next + 1) % len(b.rows)
	b.n = min(b.n+1, len(b.rows))
	b.mu.Unlock()
}

func (b *labelBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// completeSince returns the buffered labels of the complete window whose vector
// was served at or after from (all of them for a zero from), in arrival
// order.
func (b *labelBuffer) completeSince(from time.Time) []schemas.Label {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]schemas.Label, 0, b.n)
	start := (b.next - b.n + len(b.rows)) % len(b.rows)
	for i := range b.n {
		if l := b.rows[(start+i)%len(b.rows)]; b.inWindow(l, from) {
			out = append(out, l)
		}
	}
	return out
}

// countCompleteSince is len(completeSince(from)) without the copy.
func (b *labelBuffer) countCompleteSince(from time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := 0
	for i := range b.n {
		if b.inWindow(b.rows[i], from) {
			c++
		}
	}
	return c
}

// completeEnd is where the complete window ends: the event time up to
// which every partition's outcomes are known.
func (b *labelBuffer) completeEnd() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.complete
}

func (b *labelBuffer) inWindow(l schemas.Label, from time.Time) bool {
	return !l.EventTime.Before(from) && !l.EventTime.After(b.complete)
}
