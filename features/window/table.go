package window

import (
	"hash/fnv"
	"math"
	"strings"
	"unsafe"
)

// chunkSlots is the number of key slots per slab chunk: the slab grows by
// chunks, so growing never copies the state of a million keys.
const chunkSlots = 1024

// slotMeta is what a table keeps beside a key's words: 32 bytes. The key
// is a pointer to its bytes with the length beside the session hint, the
// timer-heap position and the two flags share one word (see the bits
// below); times are Unix ms.
type slotMeta struct {
	kp   unsafe.Pointer // the key's bytes, or a *string for a key of longKey bytes or more
	seen int64          // latest event time of the key
	due  int64          // when its timer fires: next window end or expiry
	hf   uint32         // heap position + 1 (0: no timer), liveBit, dirtyBit
	hl   uint32         // users: the slot of the user's latest session + 1 (a guess, checked; 0: none) in the low 24 bits; the key's length in the top 8
}

const (
	posMask  = 1<<30 - 1
	liveBit  = 1 << 30
	dirtyBit = 1 << 31
	// maxSlots bounds a table's slots: a hint+1 fits 24 bits, and heap
	// positions of both tables' keys fit posMask.
	maxSlots = 1<<24 - 2
	hintMask = 1<<24 - 1
	longKey  = 255 // a key length that does not fit the 8 bits
)

func (m *slotMeta) key() string {
	n := m.hl >> 24
	if n == longKey {
		return *(*string)(m.kp)
	}
	return unsafe.String((*byte)(m.kp), n)
}

// setKey sets the key (the engine's clone) and clears the hint.
func (m *slotMeta) setKey(k string) {
	if len(k) >= longKey {
		p := new(string)
		*p = k
		m.kp, m.hl = unsafe.Pointer(p), longKey<<24
		return
	}
	m.kp, m.hl = unsafe.Pointer(unsafe.StringData(k)), uint32(len(k))<<24
}

// hint is the slot of a user's latest session, -1 when none.
func (m *slotMeta) hint() int32     { return int32(m.hl&hintMask) - 1 }
func (m *slotMeta) setHint(s int32) { m.hl = m.hl&^hintMask | uint32(s+1) }

func (m *slotMeta) live() bool  { return m.hf&liveBit != 0 }
func (m *slotMeta) dirty() bool { return m.hf&dirtyBit != 0 }

// pos is the key's index in the engine's timer heap, -1 when it has none.
func (m *slotMeta) pos() int     { return int(m.hf&posMask) - 1 }
func (m *slotMeta) setPos(i int) { m.hf = m.hf&^posMask | uint32(i+1) }

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
		t.lastKey, t.lastSlot = t.meta(s).key(), s
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
	m := t.meta(s)
	*m = slotMeta{seen: math.MinInt64, due: math.MaxInt64, hf: liveBit}
	m.setKey(k)
	clear(t.words(s))
	t.index.insert(t, k, s)
	t.live++
	t.lastKey, t.lastSlot = k, s
	return s
}

// remove drops a key and queues its tombstone. The key must have no
// timer (Engine.unschedule).
func (t *table) remove(s int32) {
	m := t.meta(s)
	key := m.key()
	if _, pos, ok := t.index.find(t, key); ok {
		t.index.remove(t, pos)
	}
	t.tombs = append(t.tombs, key)
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
	if !m.dirty() {
		m.hf |= dirtyBit
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

// timerHeap is a binary min-heap, by due, of the keys that have a timer
// (their next window end or expiry): one 4-byte reference per key (entity
// in the top bit, slot below), the due time read from the key's slotMeta,
// which holds the key's position in turn, so a key's timer is moved in
// place when its due time changes, never duplicated. It pops in the same
// order as a heap of (due, key) entries with stale ones skipped.
type timerHeap []uint32

func timerRef(ent Entity, s int32) uint32 { return uint32(ent)<<31 | uint32(s) }

func (e *Engine) timerMeta(r uint32) *slotMeta {
	return e.tables[r>>31].meta(int32(r &^ (1 << 31)))
}

// schedule sets a key's due time and places its timer.
func (e *Engine) schedule(t *table, s int32, due int64) {
	m := t.meta(s)
	m.due = due
	i := m.pos()
	if i < 0 {
		i = len(e.timers)
		e.timers = append(e.timers, timerRef(t.ent, s))
		m.setPos(i)
	}
	if !e.timerUp(i) {
		e.timerDown(i)
	}
}

// unschedule removes a key's timer, if it has one.
func (e *Engine) unschedule(t *table, s int32) {
	m := t.meta(s)
	i := m.pos()
	if i < 0 {
		return
	}
	m.hf &^= posMask
	n := len(e.timers) - 1
	if i != n {
		e.timers[i] = e.timers[n]
		e.timerMeta(e.timers[i]).setPos(i)
	}
	e.timers[n] = 0
	e.timers = e.timers[:n]
	if i != n && !e.timerUp(i) {
		e.timerDown(i)
	}
}

// timerUp sifts entry i towards the root and reports whether it moved.
func (e *Engine) timerUp(i int) bool {
	q := e.timers
	r := q[i]
	m := e.timerMeta(r)
	due := m.due
	moved := false
	for i > 0 {
		p := (i - 1) / 2
		pm := e.timerMeta(q[p])
		if pm.due <= due {
			break
		}
		q[i] = q[p]
		pm.setPos(i)
		i, moved = p, true
	}
	q[i] = r
	m.setPos(i)
	return moved
}

func (e *Engine) timerDown(i int) {
	q := e.timers
	n := len(q)
	r := q[i]
	m := e.timerMeta(r)
	due := m.due
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		lm := e.timerMeta(q[l])
		if rr := l + 1; rr < n {
			if rm := e.timerMeta(q[rr]); rm.due < lm.due {
				l, lm = rr, rm
			}
		}
		if due <= lm.due {
			break
		}
		q[i] = q[l]
		lm.setPos(i)
		i = l
	}
	q[i] = r
	m.setPos(i)
}
