package trainers

import (
	"sync"
	"time"

	"github.com/driftline/driftline/schemas"
)

// labelBuffer keeps the most recent labelled vectors, oldest overwritten.
type labelBuffer struct {
	mu   sync.Mutex
	rows []schemas.Label
	next int
	n    int
}

func newLabelBuffer(size int) *labelBuffer { return &labelBuffer{rows: make([]schemas.Label, size)} }

func (b *labelBuffer) add(l schemas.Label) {
	b.mu.Lock()
	b.rows[b.next] = l
	b.next = (b.next + 1) % len(b.rows)
	b.n = min(b.n+1, len(b.rows))
	b.mu.Unlock()
}

func (b *labelBuffer) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// since returns the buffered labels whose vector was served at or after
// from (all of them for a zero from), oldest first, and how many there are.
func (b *labelBuffer) since(from time.Time) []schemas.Label {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]schemas.Label, 0, b.n)
	start := (b.next - b.n + len(b.rows)) % len(b.rows)
	for i := range b.n {
		l := b.rows[(start+i)%len(b.rows)]
		if !l.EventTime.Before(from) {
			out = append(out, l)
		}
	}
	return out
}

func (b *labelBuffer) countSince(from time.Time) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := 0
	for i := range b.n {
		if !b.rows[i].EventTime.Before(from) {
			c++
		}
	}
	return c
}
