package chsink

import (
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// column is one typed, append-only column of a pending batch. Rows are
// appended column-wise and sent to clickhouse-go in one Append per column,
// so a row costs no boxing into interfaces.
type column interface {
	name() string
	send(b driver.Batch, i int) error
	reset()
}

type col[T any] struct {
	n string
	v []T
}

func (c *col[T]) name() string { return c.n }
func (c *col[T]) add(v T)      { c.v = append(c.v, v) }
func (c *col[T]) reset() {
	clear(c.v) // release strings and slices the rows pointed at
	c.v = c.v[:0]
}

func (c *col[T]) send(b driver.Batch, i int) error {
	if err := b.Column(i).Append(c.v); err != nil {
		return fmt.Errorf("cannot append column %s: %w", c.n, err)
	}
	return nil
}

// table is the pending batch of one ClickHouse table.
type table struct {
	name string
	cols []column
	rows int
	// since is when the oldest pending row was added.
	since time.Time
}

func newCol[T any](t *table, name string) *col[T] {
	c := &col[T]{n: name}
	t.cols = append(t.cols, c)
	return c
}

func (t *table) str(name string) *col[string]     { return newCol[string](t, name) }
func (t *table) f64(name string) *col[float64]    { return newCol[float64](t, name) }
func (t *table) u64(name string) *col[uint64]     { return newCol[uint64](t, name) }
func (t *table) u32(name string) *col[uint32]     { return newCol[uint32](t, name) }
func (t *table) u16(name string) *col[uint16]     { return newCol[uint16](t, name) }
func (t *table) u8(name string) *col[uint8]       { return newCol[uint8](t, name) }
func (t *table) f64s(name string) *col[[]float64] { return newCol[[]float64](t, name) }
func (t *table) strs(name string) *col[[]string]  { return newCol[[]string](t, name) }
func (t *table) time(name string) *timeCol {
	return &timeCol{t: newCol[time.Time](t, name), ms: newCol[uint64](t, name+"_ms")}
}
func (t *table) columnNames() []string {
	out := make([]string, len(t.cols))
	for i, c := range t.cols {
		out[i] = c.name()
	}
	return out
}

// added marks one more pending row.
func (t *table) added(now time.Time) {
	if t.rows == 0 {
		t.since = now
	}
	t.rows++
}

func (t *table) reset() {
	for _, c := range t.cols {
		c.reset()
	}
	t.rows = 0
}

// timeCol is a DateTime column (seconds, UTC) with its UInt64
// epoch-milliseconds companion: 18.16 has no DateTime64.
type timeCol struct {
	t  *col[time.Time]
	ms *col[uint64]
}

func (c *timeCol) add(t time.Time) {
	if t.IsZero() || t.Before(epoch) {
		t = epoch // DateTime cannot hold times before 1970
	}
	c.t.add(t.UTC())
	c.ms.add(uint64(t.UnixMilli()))
}

var epoch = time.Unix(0, 0).UTC()

func (c *timeCol) addMillis(ms int64) {
	c.add(time.UnixMilli(ms))
}
