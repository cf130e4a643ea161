package features

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// The state of a partition as changelog records. Every key of the state is
// one record in the changelog partition of the same number: the latest
// record of a key is its value, a tombstone (nil value) deletes it. Keys:
//
//	wu/<user_id>     the window engine's state of a user (its features)
//	ws/<session_id>  the window engine's state of a session (its features)
//	wm               the window engine's clock (maximum event time, watermark)
//	s/<session_id>   a session's label bookkeeping: user, segments, purchases
//	p/<event_id>     a vector waiting for its label (values, score, version)
//	c                the partition's input clocks (watermark) and sweep mark
//
// The stage's values are a version byte followed by varints,
// length-prefixed strings and little-endian float64 bits: compact, and
// decoded without reflection. The engine's are window.State records
// (AppendState/Restore): a record of another layout (the definitions or the
// lateness changed) is skipped and counted, its key starts from empty.
const (
	prefixSession    = "s/"
	prefixPending    = "p/"
	prefixEngUser    = "wu/"
	prefixEngSession = "ws/"
	keyClock         = "c"
	keyEngineClock   = "wm"

	stateVersion = 1
	// sessionVersion is 2: since the window engine keeps the features, a
	// session record holds only the label bookkeeping (version 1, the
	// hand-written counters, is rejected: rebuild from the inputs).
	sessionVersion = 2
)

// enginePrefix is the changelog key prefix of an engine entity's keys.
var enginePrefix = [...]string{window.User: prefixEngUser, window.Session: prefixEngSession}

// keyFlags is the changelog bookkeeping of one state key.
type keyFlags uint8

const (
	flagDirty   keyFlags = 1 << iota // in this batch's dirty list
	flagWritten                      // a value was written to the changelog (a deletion needs a tombstone)
	flagDeleted                      // removed from the state; a tombstone is due
	flagQueued                       // a pending label in its partition's queue
)

// dirtyKeys lists the keys of one partition changed since the last flush.
// A key is listed once per batch however many events touch it, so the
// changelog costs one record per changed key per batch, not per event.
type dirtyKeys struct {
	sessions []*session
	pending  []*pendingLabel
	clock    bool
}

func (d *dirtyKeys) session(s *session) {
	if s.flags&flagDirty == 0 {
		s.flags |= flagDirty
		d.sessions = append(d.sessions, s)
	}
}

func (d *dirtyKeys) pendingLabel(pl *pendingLabel) {
	if pl.flags&flagDirty == 0 {
		pl.flags |= flagDirty
		d.pending = append(d.pending, pl)
	}
}

// changelogWriter turns dirty keys into changelog records. Keys and values
// of a batch share one buffer and the records one slice; both are reused
// once the batch's transaction has ended (reset), so flushing allocates
// nothing in steady state.
type changelogWriter struct {
	topic string
	buf   []byte
	recs  []kgo.Record
	n     int // records written since reset
}

// reset makes the buffers reusable: only once the records handed out since
// the last reset are produced or aborted (their transaction ended).
func (w *changelogWriter) reset() {
	w.buf = w.buf[:0]
	w.recs = w.recs[:0]
}

// detach forgets the buffers without reusing them: the records handed out
// belong to the caller (TakeOutputs).
func (w *changelogWriter) detach() {
	w.buf = nil
	w.recs = nil
}

// stateValue is a state key's value as changelog bytes. (An interface, not
// a method value: a method value would allocate a closure per record.)
type stateValue interface {
	appendBinary([]byte) []byte
}

// record appends one record for partition part whose key is prefix+id and
// whose value is enc's encoding (nil enc: a tombstone), and returns it.
func (w *changelogWriter) record(part int32, prefix, id string, enc stateValue) *kgo.Record {
	key := w.key(prefix, id)
	var value []byte
	if enc != nil {
		vs := len(w.buf)
		w.buf = enc.appendBinary(w.buf)
		value = w.buf[vs:len(w.buf):len(w.buf)]
	}
	return w.add(part, key, value)
}

// engineRecord appends one record for a key of the window engine: its state,
// or a tombstone when deleted or gone.
func (w *changelogWriter) engineRecord(part int32, eng *window.Engine, ent window.Entity, id string, deleted bool) *kgo.Record {
	key := w.key(enginePrefix[ent], id)
	var value []byte
	if !deleted {
		vs := len(w.buf)
		var ok bool
		if w.buf, ok = eng.AppendState(ent, id, w.buf); ok {
			value = w.buf[vs:len(w.buf):len(w.buf)]
		}
	}
	return w.add(part, key, value)
}

// engineClock appends the record of the engine's clock.
func (w *changelogWriter) engineClock(part int32, eng *window.Engine) *kgo.Record {
	key := w.key(keyEngineClock, "")
	vs := len(w.buf)
	w.buf = eng.AppendMeta(w.buf)
	return w.add(part, key, w.buf[vs:len(w.buf):len(w.buf)])
}

// key appends prefix+id to the buffer and returns it.
func (w *changelogWriter) key(prefix, id string) []byte {
	start := len(w.buf)
	w.buf = append(w.buf, prefix...)
	w.buf = append(w.buf, id...)
	return w.buf[start:len(w.buf):len(w.buf)]
}

// add appends a record whose key and value point into the buffer.
func (w *changelogWriter) add(part int32, key, value []byte) *kgo.Record {
	if len(w.recs) == cap(w.recs) {
		// The records already handed out keep pointing into the old
		// array, which stays alive and is no longer written.
		w.recs = make([]kgo.Record, 0, max(64, 2*cap(w.recs)))
	}
	w.recs = append(w.recs, kgo.Record{Topic: w.topic, Partition: part, Key: key, Value: value})
	w.n++
	return &w.recs[len(w.recs)-1]
}

// flush appends to out one record per dirty key of the partition (a
// tombstone for deleted keys), the engine's changed keys, and the clock
// records when the clocks moved, and clears the dirty lists.
func (ps *partState) flush(part int32, w *changelogWriter, out []*kgo.Record) []*kgo.Record {
	ps.eng.Changes(func(ent window.Entity, key string, deleted bool) {
		out = append(out, w.engineRecord(part, ps.eng, ent, key, deleted))
	})
	if wm := ps.eng.Watermark(); ps.dirty.clock || wm != ps.metaWM {
		ps.metaWM = wm
		out = append(out, w.engineClock(part, ps.eng))
	}
	d := &ps.dirty
	for i, s := range d.sessions {
		d.sessions[i] = nil
		s.flags &^= flagDirty
		switch {
		case s.flags&flagDeleted == 0:
			ps.sv = sessionRecord{ps, s}
			out = append(out, w.record(part, prefixSession, s.id(), &ps.sv))
			ps.sv = sessionRecord{}
			s.flags |= flagWritten
		case s.flags&flagWritten != 0:
			out = append(out, w.record(part, prefixSession, s.id(), nil))
			ps.releaseSession(s)
		default:
			ps.releaseSession(s)
		}
	}
	d.sessions = d.sessions[:0]
	for i, pl := range d.pending {
		d.pending[i] = nil
		pl.flags &^= flagDirty
		switch {
		case !pl.resolved:
			ps.lv = labelRecord{ps, pl}
			out = append(out, w.record(part, prefixPending, ps.eventID(pl), &ps.lv))
			ps.lv = labelRecord{}
			pl.flags |= flagWritten
		case pl.flags&flagWritten != 0:
			out = append(out, w.record(part, prefixPending, ps.eventID(pl), nil))
			ps.release(pl)
		default:
			ps.release(pl)
		}
	}
	d.pending = d.pending[:0]
	if d.clock {
		d.clock = false
		out = append(out, w.record(part, keyClock, "", ps))
	}
	return out
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendFloat(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

// sessionRecord is the changelog value of a session (flush): its segments
// and purchases are in the partition's tables.
type sessionRecord struct {
	ps *partState
	s  *session
}

func (r *sessionRecord) appendBinary(b []byte) []byte {
	s, seg := r.s, r.ps.segs(r.s)
	b = append(b, sessionVersion)
	b = appendString(b, s.userID())
	b = appendString(b, seg.Device)
	b = appendString(b, seg.Country)
	b = appendString(b, seg.Referrer)
	b = binary.AppendVarint(b, s.lastMillis)
	b = binary.AppendUvarint(b, uint64(s.npurch))
	for _, t := range r.ps.purchaseTimes(s) {
		b = binary.AppendVarint(b, t)
	}
	return b
}

// appendBinary encodes the partition's clock record.
func (ps *partState) appendBinary(b []byte) []byte {
	b = append(b, stateVersion)
	b = binary.AppendUvarint(b, numInputs)
	for _, c := range ps.clocks {
		b = binary.AppendVarint(b, c.maxTS)
	}
	return binary.AppendVarint(b, ps.swept)
}

// errCorrupt reports a changelog value this version cannot read.
var errCorrupt = errors.New("corrupt or unknown state record")

// reader decodes one value; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = errCorrupt
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

func (r *reader) float() float64 {
	if len(r.b) < 8 {
		r.fail()
		return 0
	}
	f := math.Float64frombits(binary.LittleEndian.Uint64(r.b))
	r.b = r.b[8:]
	return f
}

// count reads a length that must fit in what is left (each element takes
// at least one byte), so a corrupt length cannot allocate gigabytes.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail()
		return 0
	}
	return int(n)
}

func (r *reader) version() { r.versionOf(stateVersion) }

func (r *reader) versionOf(v byte) {
	if len(r.b) == 0 || r.b[0] != v {
		r.fail()
		return
	}
	r.b = r.b[1:]
}

// restoring collects a partition's records while its changelog is read;
// finish links them into a partState.
type restoring struct {
	sessions map[string]*restoredSession
	engine   map[string][]byte // engine keys (with their prefix) -> latest record
	engClock []byte
	pending  map[string]*restoredLabel
	clocks   [numInputs]int64
	swept    int64
	bad      int // records that could not be decoded (skipped)
}

func newRestoring() *restoring {
	return &restoring{
		sessions: map[string]*restoredSession{}, engine: map[string][]byte{},
		pending: map[string]*restoredLabel{},
	}
}

// apply folds one changelog record into the state being restored.
func (rs *restoring) apply(key, value []byte) error {
	k := string(key)
	var err error
	switch {
	case k == keyClock:
		if value != nil {
			err = rs.clock(value)
		}
	case k == keyEngineClock:
		rs.engClock = bytes.Clone(value)
	case strings.HasPrefix(k, prefixEngUser) || strings.HasPrefix(k, prefixEngSession):
		if value == nil {
			delete(rs.engine, k)
			return nil
		}
		rs.engine[k] = bytes.Clone(value)
	case len(k) > 2 && k[:2] == prefixSession:
		id := k[2:]
		if value == nil {
			delete(rs.sessions, id)
			return nil
		}
		var s *restoredSession
		if s, err = decodeSession(value); err == nil {
			rs.sessions[id] = s
		}
	case len(k) > 2 && k[:2] == prefixPending:
		id := k[2:]
		delete(rs.pending, id)
		if value == nil {
			return nil
		}
		var pl *restoredLabel
		if pl, err = decodePending(id, value); err == nil {
			rs.pending[id] = pl
		}
	default:
		err = errCorrupt
	}
	if err != nil {
		rs.bad++
		return fmt.Errorf("cannot restore state key %q: %w", k, err)
	}
	return nil
}

func (rs *restoring) clock(value []byte) error {
	r := reader{b: value}
	r.version()
	n := r.count()
	for i := range n {
		ts := r.varint()
		if i < numInputs {
			rs.clocks[i] = ts
		}
	}
	rs.swept = r.varint()
	return r.err
}

// restoredSession is a session read from the changelog, before finish
// puts it into the partition's slab.
type restoredSession struct {
	userID     string
	segments   schemas.Segments
	lastMillis int64
	purchases  []int64
}

func decodeSession(value []byte) (*restoredSession, error) {
	r := reader{b: value}
	r.versionOf(sessionVersion)
	s := &restoredSession{userID: r.str()}
	s.segments = schemas.Segments{Device: r.str(), Country: r.str(), Referrer: r.str()}
	s.lastMillis = r.varint()
	for range r.count() {
		s.purchases = append(s.purchases, r.varint())
	}
	return s, r.err
}

// restoredLabel is a pending label read from the changelog, before finish
// puts it into the partition's arena.
type restoredLabel struct {
	id, sess string
	atMs     int64
	score    float64
	version  int32
	values   []float64
}

func decodePending(id string, value []byte) (*restoredLabel, error) {
	r := reader{b: value}
	r.version()
	pl := &restoredLabel{id: id}
	pl.sess = r.str()
	pl.atMs = r.varint()
	pl.score = r.float()
	pl.version = int32(r.varint())
	n := r.count()
	pl.values = make([]float64, n)
	for i := range pl.values {
		pl.values[i] = r.float()
	}
	return pl, r.err
}

// finish builds the partition's state into a fresh engine: the engine's
// clock first (so restored keys schedule against the restored watermark),
// then its keys in key order; sessions share interned segments, pending
// labels hang off their sessions and sit in the queue. A pending label whose
// session is missing cannot be labelled and is dropped, and an engine
// record the engine refuses (another layout) is skipped: both are counted
// as bad, with the first error.
func (rs *restoring) finish(now time.Time, eng *window.Engine) (*partState, error) {
	ps := newPartState(now, eng)
	var firstErr error
	fail := func(err error) {
		rs.bad++
		if firstErr == nil {
			firstErr = err
		}
	}
	if rs.engClock != nil {
		if err := eng.RestoreMeta(rs.engClock); err != nil {
			fail(err)
		}
	}
	ps.metaWM = eng.Watermark()
	for _, k := range slices.Sorted(maps.Keys(rs.engine)) {
		ent, id := window.User, k[len(prefixEngUser):]
		if strings.HasPrefix(k, prefixEngSession) {
			ent, id = window.Session, k[len(prefixEngSession):]
		}
		if err := eng.Restore(ent, id, rs.engine[k]); err != nil {
			fail(err)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rs.sessions)) {
		rsess := rs.sessions[id]
		if len(id) > maxIDBytes || len(rsess.userID) > maxIDBytes {
			fail(fmt.Errorf("cannot restore session %.64q: id or user id longer than %d bytes", id, maxIDBytes))
			continue
		}
		s := ps.newSession() // into the slab
		s.setIDs(id, rsess.userID)
		s.lastMillis, s.flags = rsess.lastMillis, flagWritten
		ps.setSegments(s, rsess.segments)
		for _, t := range rsess.purchases {
			ps.addPurchase(s, t) // keeps the latest maxSessionPurchases
		}
		ps.sessions.put(s)
	}
	// In event-time order, so labels resolved together come out in the
	// order an uninterrupted run would emit them.
	pls := slices.Collect(maps.Values(rs.pending))
	slices.SortFunc(pls, func(a, b *restoredLabel) int {
		return cmp.Or(cmp.Compare(a.atMs, b.atMs), strings.Compare(a.id, b.id))
	})
	for _, rl := range pls {
		s := ps.sessions.get(rl.sess)
		if s == nil {
			fail(fmt.Errorf("cannot restore pending label %q: its session %q is missing", rl.id, rl.sess))
			continue
		}
		pl := ps.newPendingLabel(s, rl.id, rl.atMs, rl.values)
		pl.score, pl.version = rl.score, rl.version
		pl.flags |= flagWritten | flagQueued
		ps.addPending(s, pl)
		ps.queue = append(ps.queue, pl.idx)
	}
	ps.queueInit()
	for i, ts := range rs.clocks {
		ps.clocks[i].maxTS = ts
		if ts > 0 {
			// A restored input counts as just read: it holds the
			// watermark back until it has really been idle.
			ps.clocks[i].lastRead = now
		}
	}
	ps.swept = rs.swept
	return ps, firstErr
}
