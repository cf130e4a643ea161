package features

import (
	"container/heap"
	"encoding/binary"
	"hash/maphash"
	"iter"
	"math"
	"math/bits"
	"strings"
	"time"
	"unsafe"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// Feature values come from the window engine (package features/window),
// one per partition, driven by the YAML definitions
// (features/window/purchase_propensity.yaml by default, Config.FeaturesFile
// otherwise). What the engine does not keep stays here: a session's
// segments, its purchases (which resolve labels) and its pending labels,
// and the input clocks behind the stage's watermark.

// session is the label bookkeeping of one storefront session. Sessions
// live in per-partition slabs (newSession), not one allocation each: an
// active user costs its bytes, not a size class (issue 3, memory). 48
// bytes: the ids are pointers and lengths (the strings' bytes are the
// window engine's copies), the segments and purchases indices into the
// partition's tables (segs, purchaseTimes).
type session struct {
	idp        *byte // its key in the sessions index: id()
	userp      *byte // its user: userID()
	lastMillis int64 // newest event time; the session's state is dropped a gap after it
	// pending is the first of the session's pending labels (its index in
	// the label slab + 1; 0: none), linked by their next field in trigger
	// order (usually one: a slice cost 24 bytes of header and an
	// allocation).
	pending int32
	slot    int32 // its place in the sessions index's slab, kept when reused
	// purch is its list in the partition's purchase lists + 1 (0: none
	// yet), kept when the session is reused; npurch of its times are set.
	purch   int32
	idLen   uint16
	userLen uint16
	seg     uint16 // its segments: an index into the partition's interned triples, or ownSegments
	npurch  uint8
	flags   keyFlags // changelog bookkeeping
}

// maxIDBytes bounds the ids a session holds: the storefront contract
// allows 128 code points (schemas.MaxIDLength), at most 512 bytes.
const maxIDBytes = 1<<16 - 1

func (s *session) id() string     { return unsafe.String(s.idp, int(s.idLen)) }
func (s *session) userID() string { return unsafe.String(s.userp, int(s.userLen)) }

// setIDs points the session at its id and its user's: strings that must
// outlive it (the engine's copies or clones), never a record's bytes.
func (s *session) setIDs(id, userID string) {
	if len(id) > maxIDBytes || len(userID) > maxIDBytes {
		panic("features: a session or user id longer than 65535 bytes passed validation")
	}
	s.idp, s.idLen = unsafe.StringData(id), uint16(len(id))
	s.userp, s.userLen = unsafe.StringData(userID), uint16(len(userID))
}

const maxSessionPurchases = 8

// purchaseTimes returns the session's purchase times, oldest first.
func (p *partState) purchaseTimes(s *session) []int64 {
	if s.purch == 0 {
		return nil
	}
	return p.purchases[s.purch-1][:s.npurch]
}

// addPurchase records a purchase time, forgetting the oldest of
// maxSessionPurchases.
func (p *partState) addPurchase(s *session, ms int64) {
	if s.purch == 0 {
		p.purchases = append(p.purchases, [maxSessionPurchases]int64{})
		s.purch = int32(len(p.purchases))
	}
	l := &p.purchases[s.purch-1]
	if s.npurch == maxSessionPurchases {
		copy(l[:], l[1:])
		s.npurch--
	}
	l[s.npurch] = ms
	s.npurch++
}

// purchasedWithin returns the time of a purchase of the session within
// [from, to], if there is one.
func (p *partState) purchasedWithin(s *session, from, to int64) (int64, bool) {
	for _, t := range p.purchaseTimes(s) {
		if t >= from && t <= to {
			return t, true
		}
	}
	return 0, false
}

// addPending appends pl to the session's pending labels.
func (p *partState) addPending(s *session, pl *pendingLabel) {
	pl.next = 0
	at := &s.pending
	for *at != 0 {
		at = &p.labelSlab.at(*at - 1).next
	}
	*at = pl.idx + 1
}

// removePending takes pl out of the session's pending labels, if there.
func (p *partState) removePending(s *session, pl *pendingLabel) {
	for at := &s.pending; *at != 0; at = &p.labelSlab.at(*at - 1).next {
		if *at == pl.idx+1 {
			*at = pl.next
			pl.next = 0
			return
		}
	}
}

// pendingLabel is a vector waiting for its outcome. It keeps only what
// its session does not: the label record is built when the outcome is
// known. Its event id and values are bytes in the partition's label arena
// (eventID, values), not buffers of its own; the struct itself lives in a
// slab. 40 bytes plus the arena's (the id, and the values compacted without
// loss: zeros take no bytes, integers and prices a varint).
type pendingLabel struct {
	atMs     int64 // event time of the scored event
	score    float64
	idx      int32  // its index in the partition's label slab, kept when reused
	next     int32  // the session's next pending label: its index + 1, 0 none
	sess     int32  // its session's slot (sessionIndex.at)
	ref      uint32 // the label's bytes in the arena (labelArena.alloc): the event id, then the encoded values
	version  int32
	idLen    uint16
	resolved bool
	flags    keyFlags // changelog bookkeeping
}

// eventID is the label's event id. It shares the arena's bytes: use it at
// once (to encode a record), never keep it, since the bytes are reused
// once the label is released.
func (p *partState) eventID(pl *pendingLabel) string {
	b := p.labels.bytes(pl.ref, int(pl.idLen))
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// values decodes the label's values into the partition's scratch vector
// and returns it: valid until the next call.
func (p *partState) values(pl *pendingLabel) []float64 {
	b := p.labels.from(pl.ref)[pl.idLen:] // the encoding knows its length
	p.scratch = decodeValues(b, p.scratch[:0])
	return p.scratch
}

// pendingQueue is a min-heap of pending labels by event time (their
// indices in the label slab: 4 bytes an entry), so one far-future event
// never holds back the expiry of the others. Entries labelled positive stay
// until their horizon passes (lazy deletion). It is ordered by
// container/heap through queueHeap; pushes and pops go through heap.Init
// and heap.Fix, since heap.Push and heap.Pop would pass each index in an
// interface{}, an allocation per label.
type pendingQueue []int32

// queueHeap is the partition's queue as a heap.Interface (one pointer: no
// allocation to pass it).
type queueHeap struct{ p *partState }

func (h queueHeap) Len() int { return len(h.p.queue) }
func (h queueHeap) Less(i, j int) bool {
	return h.p.labelSlab.at(h.p.queue[i]).atMs < h.p.labelSlab.at(h.p.queue[j]).atMs
}
func (h queueHeap) Swap(i, j int) { h.p.queue[i], h.p.queue[j] = h.p.queue[j], h.p.queue[i] }
func (h queueHeap) Push(x any)    { h.p.queue = append(h.p.queue, x.(int32)) }
func (h queueHeap) Pop() any {
	n := len(h.p.queue) - 1
	x := h.p.queue[n]
	h.p.queue = h.p.queue[:n]
	return x
}

// queueInit orders a queue appended to without queuePush.
func (p *partState) queueInit() { heap.Init(queueHeap{p}) }

func (p *partState) queuePush(pl *pendingLabel) {
	p.queue = append(p.queue, pl.idx)
	heap.Fix(queueHeap{p}, len(p.queue)-1)
}

// queueFirst is the queued label of the earliest event time; the queue
// must not be empty.
func (p *partState) queueFirst() *pendingLabel { return p.labelSlab.at(p.queue[0]) }

// queuePop removes and returns the first label: heap.Pop's steps (swap the
// root to the end, restore the heap above it) without its interface{}.
func (p *partState) queuePop() *pendingLabel {
	n := len(p.queue) - 1
	pl := p.labelSlab.at(p.queue[0])
	p.queue[0] = p.queue[n]
	p.queue = p.queue[:n]
	if n > 0 {
		heap.Fix(queueHeap{p}, 0)
	}
	return pl
}

// numInputs is the number of input topics: clickstream, cart, transactions.
const numInputs = 3

// inputClock is what the stage knows of one input topic on one partition.
type inputClock struct {
	maxTS    int64     // newest event time read; 0 none
	lastRead time.Time // wall time of the last record read
}

// partState is everything the stage keeps for one partition number of the
// co-partitioned input topics.
type partState struct {
	eng *window.Engine // feature values, keyed by user and session
	// Segment triples: interned ones by index (segments maps a triple to
	// its index in segList), and beyond maxInterned a session's own copy
	// by its slot (ownSegments), freed with it.
	segments    map[schemas.Segments]uint16
	segList     []*schemas.Segments
	ownSegments map[int32]*schemas.Segments
	purchases   [][maxSessionPurchases]int64 // sessions' purchase times (session.purch)
	sessions    sessionIndex
	queue       pendingQueue
	clocks      [numInputs]inputClock
	backlog     [numInputs]bool // the input had unread records at its last fetch (align)
	created     time.Time
	swept       int64 // watermark at the last session sweep
	metaWM      int64 // engine watermark in the last engine clock record written
	dirty       dirtyKeys

	// Sessions and pending labels are allocated from slabs and their
	// variable bytes (event id, values) from an arena; once resolved (or
	// dropped) and tombstoned they go to free lists, so a steady stream
	// allocates nothing per event.
	labelSlab    slab[pendingLabel]
	labels       labelArena
	freeLabels   []int32 // label slab indices
	freeSessions []*session
	scratch      []float64     // values decoded for a record (values)
	lv           labelRecord   // the changelog value of a pending label (flush)
	sv           sessionRecord // and of a session
}

// slab holds a partition's sessions or pending labels in chunks of
// slabChunk (one allocation per chunk, never moved, no size-class
// rounding), addressed by index: links to them (the sessions index, a
// session's list of labels, the label queue, the free list) are 4-byte
// indices, not 8-byte pointers.
type slab[T any] struct {
	chunks [][]T
	used   int32 // values ever handed out
}

const slabChunk = 256

// next hands out an unused value (zero) and its index.
func (s *slab[T]) next() (int32, *T) {
	i := s.used
	s.used++
	if int(i/slabChunk) == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	return i, s.at(i)
}

func (s *slab[T]) at(i int32) *T { return &s.chunks[i/slabChunk][i%slabChunk] }

// newSession returns an empty session, reusing a dropped one (and its
// purchases array) when there is one.
func (p *partState) newSession() *session {
	if n := len(p.freeSessions); n > 0 {
		s := p.freeSessions[n-1]
		p.freeSessions[n-1] = nil
		p.freeSessions = p.freeSessions[:n-1]
		return s
	}
	return p.sessions.next()
}

// newPendingLabel returns a pending label of session s for the event eventID
// at ms with the given values, reusing a released one when there is one.
// The id and values are copied into the arena.
func (p *partState) newPendingLabel(s *session, eventID string, ms int64, values []float64) *pendingLabel {
	var pl *pendingLabel
	if n := len(p.freeLabels); n > 0 {
		pl = p.labelSlab.at(p.freeLabels[n-1])
		p.freeLabels = p.freeLabels[:n-1]
	} else {
		var i int32
		i, pl = p.labelSlab.next()
		pl.idx = i
	}
	pl.sess, pl.atMs = s.slot, ms
	n := len(eventID) + valuesSize(values)
	ref, b := p.labels.alloc(n)
	copy(b, eventID)
	putValues(b[len(eventID):], values)
	pl.ref, pl.idLen = ref, uint16(len(eventID))
	return pl
}

// release returns a pending label to the free list once nothing refers to
// it: resolved, out of the queue (positive labels stay there until their
// horizon passes) and not waiting in the dirty list for its changelog
// tombstone. Its session no longer lists it (resolvePurchase and expire
// remove it). Calling it earlier is a no-op; the last holder calls it again.
func (p *partState) release(pl *pendingLabel) {
	if !pl.resolved || pl.flags&(flagQueued|flagDirty) != 0 {
		return
	}
	p.labels.release(pl.ref)
	*pl = pendingLabel{idx: pl.idx}
	p.freeLabels = append(p.freeLabels, pl.idx)
}

// releaseSession returns a dropped session to the free list once its
// changelog tombstone is written (not dirty any more).
func (p *partState) releaseSession(s *session) {
	if s.flags&flagDeleted == 0 || s.flags&flagDirty != 0 {
		return
	}
	if s.seg == ownSegment {
		delete(p.ownSegments, s.slot)
	}
	*s = session{purch: s.purch, slot: s.slot}
	p.freeSessions = append(p.freeSessions, s)
}

func newPartState(now time.Time, eng *window.Engine) *partState {
	return &partState{
		eng:      eng,
		segments: map[schemas.Segments]uint16{},
		sessions: newSessionIndex(),
		created:  now,
		metaWM:   math.MinInt64,
	}
}

// observe records an event time read from input topic i.
func (p *partState) observe(i int, ms int64, now time.Time) {
	c := &p.clocks[i]
	c.maxTS = max(c.maxTS, ms)
	c.lastRead = now
	p.dirty.clock = true
}

// watermark is the event time up to which the partition has seen every
// input, minus lateness: the minimum over the input topics of their newest
// event time. A topic not heard from for idle (wall time) stops holding it
// back; one never heard from holds it at 0 until it has been idle that long.
// When every input is idle, all that was sent has been read and the newest
// event time counts. It drives the window engine (Advance): the engine's
// own rule, the maximum over the topics minus lateness, would reject a
// purchase of a lagging transactions topic as late and lose its label.
func (p *partState) watermark(now time.Time, latenessMs int64, idle time.Duration) int64 {
	wm, newest, active := int64(math.MaxInt64), int64(0), false
	for _, c := range p.clocks {
		newest = max(newest, c.maxTS)
		last := c.lastRead
		if last.IsZero() {
			last = p.created
		}
		if now.Sub(last) > idle {
			continue
		}
		active = true
		wm = min(wm, c.maxTS)
	}
	if !active {
		wm = newest
	}
	if wm <= 0 {
		return 0
	}
	return wm - latenessMs
}

// maxInterned bounds the segment triples a partition shares. Storefronts
// have few (devices x countries x referrers); a producer sending many
// distinct referrers would otherwise grow the table without end, since
// interned triples are never released.
const maxInterned = 4096

// ownSegment marks a session whose segments are its own copy.
const ownSegment = math.MaxUint16

// setSegments gives s its segment triple: the shared copy, cloning its
// strings (which may point into a record) the first time it is seen.
// Beyond maxInterned triples a session gets its own copy, freed with it
// (releaseSession).
func (p *partState) setSegments(s *session, seg schemas.Segments) {
	if i, ok := p.segments[seg]; ok {
		s.seg = i
		return
	}
	c := &schemas.Segments{Device: strings.Clone(seg.Device), Country: strings.Clone(seg.Country), Referrer: strings.Clone(seg.Referrer)}
	if len(p.segList) < maxInterned {
		s.seg = uint16(len(p.segList))
		p.segments[*c] = s.seg
		p.segList = append(p.segList, c)
		return
	}
	if p.ownSegments == nil {
		p.ownSegments = map[int32]*schemas.Segments{}
	}
	s.seg = ownSegment
	p.ownSegments[s.slot] = c
}

// segs returns the segment triple of s.
func (p *partState) segs(s *session) *schemas.Segments {
	if s.seg == ownSegment {
		return p.ownSegments[s.slot]
	}
	return p.segList[s.seg]
}

// engineKey returns the window engine's copy of a key it holds, or a clone
// of key when it holds none (an entity without features).
func (p *partState) engineKey(ent window.Entity, key string) string {
	if k, ok := p.eng.Key(ent, key); ok {
		return k
	}
	return strings.Clone(key)
}

// apply records an event the engine accepted in the session's label
// bookkeeping and returns the session.
func (p *partState) apply(e *schemas.Event) *session {
	s := p.sessions.get(e.SessionID)
	if s == nil {
		s = p.newSession()
		// The engine keeps its own copies of the ids (it has just applied
		// the event): share them instead of cloning the record's again.
		s.setIDs(p.engineKey(window.Session, e.SessionID), p.engineKey(window.User, e.UserID))
		p.setSegments(s, schemas.Segments{Device: e.Device, Country: e.Country, Referrer: e.Referrer})
		p.sessions.put(s)
	}
	p.dirty.session(s)
	s.lastMillis = max(s.lastMillis, e.TimeMillis)
	if e.Type == schemas.Purchase {
		p.addPurchase(s, e.TimeMillis)
	}
	return s
}

// labelRecord is a pending label's changelog value (an interface value
// pointing at a partState field: no allocation per record).
type labelRecord struct {
	ps *partState
	pl *pendingLabel
}

func (r *labelRecord) appendBinary(b []byte) []byte { return r.ps.appendLabel(b, r.pl) }

// labelArena holds the pending labels' event ids and values: chunks of
// bytes filled in order, each chunk counting the labels that hold bytes in
// it. A chunk whose labels are all released is reused whole. Labels
// resolve roughly in the order they were made (the horizon), so chunks
// empty as the queue drains; a label that lives long (an event far ahead of
// the watermark) keeps at most its chunk (arenaChunk bytes) from reuse.
type labelArena struct {
	chunks [][]byte
	live   []int32 // labels holding bytes in each chunk
	free   []int32 // empty chunks, not cur
	cur    int32   // the chunk being filled; -1 none
	off    int     // fill offset in cur
}

// arenaChunk is the chunk size: 64 labels of the first model (an id of ~20
// bytes and ~60 of values), and always several of the longest possible
// (a 512-byte id and 9 bytes per value of a large model).
const arenaChunk = 16 << 10

// arenaAlign keeps offsets a multiple of 4 so that a uint32 ref (offset/4)
// addresses 16 GiB.
const arenaAlign = 4

// alloc returns n bytes for one label and their ref.
func (a *labelArena) alloc(n int) (uint32, []byte) {
	if n > maxChunk {
		panic("features: a pending label's id and values exceed the label arena's chunk")
	}
	size := min(max(arenaChunk, 4*n), maxChunk)
	if len(a.chunks) == 0 {
		a.cur = -1
	}
	if a.cur < 0 || a.off+n > len(a.chunks[a.cur]) {
		if a.cur >= 0 && a.live[a.cur] == 0 {
			a.free = append(a.free, a.cur)
		}
		a.cur, a.off = -1, 0
		for i, c := range a.free {
			if len(a.chunks[c]) >= n {
				a.cur = c
				a.free = append(a.free[:i], a.free[i+1:]...)
				break
			}
		}
		if a.cur < 0 {
			if len(a.chunks) == 1<<32/(maxChunk/arenaAlign) {
				panic("features: pending labels of one partition exceed the label arena (16 GiB)")
			}
			a.chunks = append(a.chunks, make([]byte, size))
			a.live = append(a.live, 0)
			a.cur = int32(len(a.chunks) - 1)
		}
	}
	pos := a.chunkStart(a.cur) + a.off
	b := a.chunks[a.cur][a.off : a.off+n : a.off+n]
	a.off += (n + arenaAlign - 1) &^ (arenaAlign - 1)
	a.live[a.cur]++
	return uint32(pos / arenaAlign), b
}

// chunkStart is the position of chunk c in the ref space: chunks are
// addressed as if each were maxChunk bytes, so a ref finds its chunk by a
// division whatever the chunks' sizes.
func (a *labelArena) chunkStart(c int32) int { return int(c) * maxChunk }

// maxChunk bounds a chunk (and so a label's bytes): refs address 16 GiB,
// 65,536 chunks of 256 KiB.
const maxChunk = 256 << 10

func (a *labelArena) locate(ref uint32) (c int32, off int) {
	pos := int(ref) * arenaAlign
	return int32(pos / maxChunk), pos % maxChunk
}

// bytes returns the n bytes at ref.
func (a *labelArena) bytes(ref uint32, n int) []byte {
	c, off := a.locate(ref)
	return a.chunks[c][off : off+n : off+n]
}

// from returns the bytes of the chunk from ref on: a label's, then others'.
func (a *labelArena) from(ref uint32) []byte {
	c, off := a.locate(ref)
	return a.chunks[c][off:]
}

// release gives back a label's bytes.
func (a *labelArena) release(ref uint32) {
	c, _ := a.locate(ref)
	a.live[c]--
	if a.live[c] > 0 {
		return
	}
	if c == a.cur {
		a.off = 0 // nothing lives in it: fill it again from the start
		return
	}
	a.free = append(a.free, c)
}

// Values are stored without loss in fewer bytes than float64s: a uvarint
// count, then 2 bits per value, then the non-zero values by kind: an
// integer (counts, hours, whole prices) as a zigzag varint, a value with
// two decimals that n/100 gives back bit for bit (prices, cart values) as
// the varint of n, float64 otherwise. A typical label's values take ~15
// bytes instead of 136; the kinds are checked by decoding, so -0, NaN and
// values that only look like cents keep all their bits.
const (
	valZero  = 0
	valInt   = 1
	valCents = 2
	val64    = 3
)

// maxExact bounds the integers a float64 holds exactly.
const maxExact = 1 << 53

// valueKind returns how v is stored and, for the varint kinds, the integer.
func valueKind(v float64) (int, int64) {
	if math.Float64bits(v) == 0 {
		return valZero, 0
	}
	if math.Abs(v) < maxExact { // false for NaN and infinities
		if i := int64(v); float64(i) == v && v != 0 { // v != 0: -0 is not the integer 0
			return valInt, i
		}
		if c := math.Round(v * 100); math.Abs(c) < maxExact {
			if i := int64(c); math.Float64bits(float64(i)/100) == math.Float64bits(v) {
				return valCents, i
			}
		}
	}
	return val64, 0
}

// valuesSize is the encoded size of vs.
func valuesSize(vs []float64) int {
	n := uvarintLen(uint64(len(vs))) + (len(vs)+3)/4
	for _, v := range vs {
		switch k, i := valueKind(v); k {
		case valInt, valCents:
			n += uvarintLen(uint64(i<<1) ^ uint64(i>>63)) // zigzag, as binary.PutVarint
		case val64:
			n += 8
		}
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// putValues encodes vs into b, exactly valuesSize(vs) bytes.
func putValues(b []byte, vs []float64) {
	n := binary.PutUvarint(b, uint64(len(vs)))
	tags := b[n : n+(len(vs)+3)/4]
	clear(tags)
	b = b[n+len(tags):]
	for i, v := range vs {
		k, iv := valueKind(v)
		tags[i/4] |= byte(k) << (2 * (i % 4))
		switch k {
		case valInt, valCents:
			b = b[binary.PutVarint(b, iv):]
		case val64:
			binary.LittleEndian.PutUint64(b, math.Float64bits(v))
			b = b[8:]
		}
	}
}

// decodeValues appends the values encoded in b (by putValues) to dst.
func decodeValues(b []byte, dst []float64) []float64 {
	cnt, n := binary.Uvarint(b)
	tags := b[n : n+int((cnt+3)/4)]
	b = b[n+len(tags):]
	for i := range int(cnt) {
		switch (tags[i/4] >> (2 * (i % 4))) & 3 {
		case valInt:
			iv, n := binary.Varint(b)
			dst = append(dst, float64(iv))
			b = b[n:]
		case valCents:
			iv, n := binary.Varint(b)
			dst = append(dst, float64(iv)/100)
			b = b[n:]
		case val64:
			dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)))
			b = b[8:]
		default:
			dst = append(dst, 0)
		}
	}
	return dst
}

// appendLabel appends a pending label's changelog value: the session, the
// event time, score, version and the values as float64 bits.
func (p *partState) appendLabel(b []byte, pl *pendingLabel) []byte {
	b = append(b, stateVersion)
	b = appendString(b, p.sessions.at(pl.sess).id())
	b = binary.AppendVarint(b, pl.atMs)
	b = appendFloat(b, pl.score)
	b = binary.AppendVarint(b, int64(pl.version))
	vs := p.values(pl)
	b = binary.AppendUvarint(b, uint64(len(vs)))
	for _, v := range vs {
		b = appendFloat(b, v)
	}
	return b
}

// sessionIndex holds a partition's sessions: a slab of session structs
// (chunks of slabChunk, never moved) and an open-addressing index over it
// (linear probing over 4-byte entries: slot+1 in the low shift bits, the
// top 32-shift bits of the id's hash above them as a tag; the id itself
// read from the session), as window's keyIndex does for the engine's keys.
// An entry does not hold its home position: growing and backward-shift
// deletion hash the id again. A map[string]*session cost ~50 bytes per
// session (string header, pointer, control byte, growth slack), this ~4-11.
type sessionIndex struct {
	seed    maphash.Seed
	shift   uint     // slot bits; widened as the slab outgrows them
	entries []uint32 // 0: empty
	n       int
	slab    slab[session]
}

func newSessionIndex() sessionIndex {
	return sessionIndex{seed: maphash.MakeSeed(), shift: uint(bits.Len(slabChunk)), entries: make([]uint32, 64)}
}

// next hands out a new slot's session (empty); the caller fills it and
// puts it.
func (x *sessionIndex) next() *session {
	sl, s := x.slab.next()
	s.slot = sl
	return s
}

func (x *sessionIndex) at(sl int32) *session { return x.slab.at(sl) }

func (x *sessionIndex) hash(id string) uint32 { return uint32(maphash.String(x.seed, id)) }

// slot is the slot an entry refers to.
func (x *sessionIndex) slot(e uint32) int32 { return int32(e&(1<<x.shift-1)) - 1 }

// find returns the session of id and the position of its entry (or of
// the empty entry where it would go).
func (x *sessionIndex) find(id string) (*session, int) {
	h := x.hash(id)
	tag := h >> x.shift
	mask := len(x.entries) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := x.entries[i]
		if e == 0 {
			return nil, i
		}
		if e>>x.shift == tag {
			if s := x.at(x.slot(e)); s.id() == id {
				return s, i
			}
		}
	}
}

// get returns the session of id, nil when there is none.
func (x *sessionIndex) get(id string) *session {
	s, _ := x.find(id)
	return s
}

// len is the number of sessions indexed.
func (x *sessionIndex) len() int { return x.n }

// put indexes s (from next or the free list) under its id, known to be absent.
func (x *sessionIndex) put(s *session) {
	size, shift := len(x.entries), x.shift
	if (x.n+1)*4 > size*3 {
		size *= 2
	}
	for uint64(s.slot+1) >= 1<<shift {
		shift++
	}
	if size != len(x.entries) || shift != x.shift {
		old, oldShift := x.entries, x.shift
		x.entries, x.shift = make([]uint32, size), shift
		for _, e := range old {
			if e != 0 {
				sl := int32(e&(1<<oldShift-1)) - 1
				x.place(x.hash(x.at(sl).id()), sl)
			}
		}
	}
	x.place(x.hash(s.id()), s.slot)
	x.n++
}

func (x *sessionIndex) place(h uint32, sl int32) {
	mask := len(x.entries) - 1
	i := int(h) & mask
	for x.entries[i] != 0 {
		i = (i + 1) & mask
	}
	x.entries[i] = h>>x.shift<<x.shift | uint32(sl+1)
}

// del removes id from the index (the session itself stays where it is),
// shifting back the entries of its probe run so that no lookup stops at a
// hole.
func (x *sessionIndex) del(id string) {
	s, i := x.find(id)
	if s == nil {
		return
	}
	mask := len(x.entries) - 1
	for {
		x.entries[i] = 0
		j := i
		for {
			j = (j + 1) & mask
			e := x.entries[j]
			if e == 0 {
				x.n--
				return
			}
			k := int(x.hash(x.at(x.slot(e)).id())) & mask
			// The entry at j stays if its home k lies cyclically in (i, j].
			if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
				continue
			}
			x.entries[i] = e
			i = j
			break
		}
	}
}

// all yields the indexed sessions by id, in slab order; del may be called
// while iterating.
func (x *sessionIndex) all() iter.Seq2[string, *session] {
	return func(yield func(string, *session) bool) {
		for sl := range x.slab.used {
			s := x.at(sl)
			if s.idLen == 0 || s.flags&flagDeleted != 0 {
				continue // free, or dropped and awaiting its tombstone
			}
			if !yield(s.id(), s) {
				return
			}
		}
	}
}
