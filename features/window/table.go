package window

import (
	"hash/fnv"
	"math"
	"strings"
)

// chunkSlots is the number of key slots per slab chunk: the slab grows by
// chunks, so growing never copies the state of a million keys.
const chunkSlots = 1024

// slotMeta is what a table keeps beside a key's words.
type slotMeta struct {
	key   string
	seen  int64 // latest event time of the key
	due   int64 // when its timer fires: next window end or expiry
	hint  int32 // users: the slot of the user's latest session (a guess, checked)
	live  bool
	dirty bool
}

// table is the state of one entity kind: fixed-size slots in a slab.
type table struct {
	ent    Entity
	ttl    int64
	feats  []layout
	byType [len(eventTypes)][]int32 // feats with state fed by each event type
	stride int                      // words per key
	hash   uint32                   // of the layout: a changelog record fits only the same one
	index  keyIndex
	slab   [][]float64
	metas  [][]slotMeta
	used   int32 // slots ever handed out
	free   []int32
	live   int
	dirty  []int32
	tombs  []string // expired or deleted keys not yet reported by Changes

	lastKey  string // a one-entry cache in front of index: Update then Vector
	lastSlot int32
}

func newTable(ent Entity, ttl int64) *table {
	return &table{ent: ent, ttl: ttl, index: newKeyIndex(), lastSlot: -1}
}

// words returns a key's state words (full slice expression: an append can
// never spill into the next key).
func (t *table) words(s int32) []float64 {
	i := int(s%chunkSlots) * t.stride
	return t.slab[s/chunkSlots][i : i+t.stride : i+t.stride]
}

func (t *table) meta(s int32) *slotMeta { return &t.metas[s/chunkSlots][s%chunkSlots] }

func (t *table) lookup(key string) (int32, bool) {
	if t.lastSlot >= 0 && key == t.lastKey {
		return t.lastSlot, true
	}
	s, _, ok := t.index.find(t, key)
	if ok {
		t.lastKey, t.lastSlot = t.meta(s).key, s
	}
	return s, ok
}

// create adds a key with empty state. The key is cloned: it may point into
// a Kafka record.
func (t *table) create(key string) int32 {
	var s int32
	if n := len(t.free); n > 0 {
		s = t.free[n-1]
		t.free = t.free[:n-1]
	} else {
		s = t.used
		t.used++
		if int(s/chunkSlots) == len(t.slab) {
			t.slab = append(t.slab, make([]float64, chunkSlots*t.stride))
			t.metas = append(t.metas, make([]slotMeta, chunkSlots))
		}
	}
	k := strings.Clone(key)
	*t.meta(s) = slotMeta{key: k, seen: math.MinInt64, due: math.MaxInt64, hint: -1, live: true}
	clear(t.words(s))
	t.index.insert(k, s)
	t.live++
	t.lastKey, t.lastSlot = k, s
	return s
}

// remove drops a key and queues its tombstone.
func (t *table) remove(s int32) {
	m := t.meta(s)
	if _, pos, ok := t.index.find(t, m.key); ok {
		t.index.remove(pos)
	}
	t.tombs = append(t.tombs, m.key)
	if t.lastSlot == s {
		t.lastKey, t.lastSlot = "", -1
	}
	*m = slotMeta{}
	clear(t.words(s))
	t.free = append(t.free, s)
	t.live--
}

func (t *table) markDirty(s int32) {
	m := t.meta(s)
	if !m.dirty {
		m.dirty = true
		t.dirty = append(t.dirty, s)
	}
}

// layoutHash fingerprints a table's layout: a state record written under
// other definitions (or another lateness) does not restore into it.
func layoutHash(t *table) uint32 {
	h := fnv.New32a()
	var buf []byte
	add := func(v int64) {
		buf = buf[:0]
		for range 8 {
			buf = append(buf, byte(v))
			v >>= 8
		}
		h.Write(buf)
	}
	add(int64(t.ent))
	add(int64(t.stride))
	for _, l := range t.feats {
		h.Write([]byte(l.d.name))
		add(int64(l.d.agg))
		add(int64(l.d.kind))
		add(l.d.size)
		add(l.d.hop)
		add(l.d.gap)
		add(int64(l.d.distinct))
		add(int64(l.d.pit))
		add(int64(l.nb))
		add(int64(l.bw))
	}
	return h.Sum32()
}

// timer is a key's next due time: a window end or its expiry.
type timer struct {
	due  int64
	slot int32
	ent  Entity
}

// timerHeap is a binary min-heap by due. Entries whose due no longer
// matches their key's are stale and skipped when popped.
type timerHeap []timer

func (h *timerHeap) push(x timer) {
	*h = append(*h, x)
	q := *h
	i := len(q) - 1
	for i > 0 {
		p := (i - 1) / 2
		if q[p].due <= q[i].due {
			break
		}
		q[p], q[i] = q[i], q[p]
		i = p
	}
}

func (h *timerHeap) pop() timer {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && q[r].due < q[l].due {
			l = r
		}
		if q[i].due <= q[l].due {
			break
		}
		q[i], q[l] = q[l], q[i]
		i = l
	}
	*h = q
	return top
}
