package features

import (
	"math"
	"slices"
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

// session is the label bookkeeping of one storefront session.
type session struct {
	id         string            // the sessions map's key
	userID     string            // its user
	segments   *schemas.Segments // interned: few distinct triples
	lastMillis int64             // newest event time; the session's state is dropped a gap after it
	flags      keyFlags          // changelog bookkeeping
	purchases  []int64           // event times of the session's purchases, latest maxSessionPurchases
	pending    []*pendingLabel
}

const maxSessionPurchases = 8

// purchasedWithin returns the time of a purchase of the session within
// [from, to], if there is one.
func (s *session) purchasedWithin(from, to int64) (int64, bool) {
	for _, t := range s.purchases {
		if t >= from && t <= to {
			return t, true
		}
	}
	return 0, false
}

// pendingLabel is a vector waiting for its outcome. It keeps only what
// its session does not: the label record is built when the outcome is known.
type pendingLabel struct {
	sess  *session
	idBuf []byte // the event id, reused when the label is (newPendingLabel)
	// values are reused too: a label record encodes them at once, and a
	// label is reused only once it is resolved, out of the queue and
	// written to the changelog (release).
	values   []float64
	atMs     int64 // event time of the scored event
	score    float64
	version  int32
	resolved bool
	flags    keyFlags // changelog bookkeeping
}

// eventID is the label's event id. It shares the label's buffer: use it
// at once (to encode a record), never keep it, since the buffer is reused
// once the label is released.
func (pl *pendingLabel) eventID() string {
	return unsafe.String(unsafe.SliceData(pl.idBuf), len(pl.idBuf))
}

// pendingQueue is a min-heap of pending labels by event time, so one
// far-future event never holds back the expiry of the others. Entries
// labelled positive stay until their horizon passes (lazy deletion).
type pendingQueue []*pendingLabel

func (q pendingQueue) Len() int           { return len(q) }
func (q pendingQueue) Less(i, j int) bool { return q[i].atMs < q[j].atMs }
func (q pendingQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pendingQueue) Push(x any)        { *q = append(*q, x.(*pendingLabel)) }
func (q *pendingQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
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
	eng      *window.Engine // feature values, keyed by user and session
	segments map[schemas.Segments]*schemas.Segments
	sessions map[string]*session
	queue    pendingQueue
	clocks   [numInputs]inputClock
	backlog  [numInputs]bool // the input had unread records at its last fetch (align)
	created  time.Time
	swept    int64 // watermark at the last session sweep
	metaWM   int64 // engine watermark in the last engine clock record written
	dirty    dirtyKeys

	// Free lists: resolved pending labels and dropped sessions are reused
	// with their buffers, so a steady stream allocates nothing per event.
	freeLabels   []*pendingLabel
	freeSessions []*session
}

// newPendingLabel returns a pending label of session s for the event eventID
// at ms, reusing a released one (and its buffers) when there is one. Its
// values are empty with capacity kept.
func (p *partState) newPendingLabel(s *session, eventID string, ms int64, nvalues int) *pendingLabel {
	var pl *pendingLabel
	if n := len(p.freeLabels); n > 0 {
		pl = p.freeLabels[n-1]
		p.freeLabels[n-1] = nil
		p.freeLabels = p.freeLabels[:n-1]
	} else {
		pl = &pendingLabel{}
	}
	pl.sess, pl.atMs = s, ms
	pl.idBuf = append(pl.idBuf[:0], eventID...)
	if cap(pl.values) < nvalues {
		pl.values = make([]float64, 0, nvalues)
	}
	pl.values = pl.values[:0]
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
	idBuf, values := pl.idBuf, pl.values
	*pl = pendingLabel{idBuf: idBuf, values: values}
	p.freeLabels = append(p.freeLabels, pl)
}

// releaseSession returns a dropped session to the free list once its
// changelog tombstone is written (not dirty any more).
func (p *partState) releaseSession(s *session) {
	if s.flags&flagDeleted == 0 || s.flags&flagDirty != 0 {
		return
	}
	purchases, pending := s.purchases[:0], s.pending[:0]
	*s = session{purchases: purchases, pending: pending}
	p.freeSessions = append(p.freeSessions, s)
}

func newPartState(now time.Time, eng *window.Engine) *partState {
	return &partState{
		eng:      eng,
		segments: map[schemas.Segments]*schemas.Segments{},
		sessions: map[string]*session{},
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

// intern returns the shared copy of a segment triple, cloning its strings
// (which may point into a record) the first time it is seen. Beyond
// maxInterned triples a session gets its own copy, freed with it.
func (p *partState) intern(seg schemas.Segments) *schemas.Segments {
	if s, ok := p.segments[seg]; ok {
		return s
	}
	s := &schemas.Segments{Device: strings.Clone(seg.Device), Country: strings.Clone(seg.Country), Referrer: strings.Clone(seg.Referrer)}
	if len(p.segments) < maxInterned {
		p.segments[*s] = s
	}
	return s
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
	s := p.sessions[e.SessionID]
	if s == nil {
		if n := len(p.freeSessions); n > 0 {
			s = p.freeSessions[n-1]
			p.freeSessions[n-1] = nil
			p.freeSessions = p.freeSessions[:n-1]
		} else {
			s = &session{}
		}
		// The engine keeps its own copies of the ids (it has just applied
		// the event): share them instead of cloning the record's again.
		s.id = p.engineKey(window.Session, e.SessionID)
		s.userID = p.engineKey(window.User, e.UserID)
		s.segments = p.intern(schemas.Segments{Device: e.Device, Country: e.Country, Referrer: e.Referrer})
		p.sessions[s.id] = s
	}
	p.dirty.session(s)
	s.lastMillis = max(s.lastMillis, e.TimeMillis)
	if e.Type == schemas.Purchase {
		if len(s.purchases) == maxSessionPurchases {
			s.purchases = slices.Delete(s.purchases, 0, 1)
		}
		s.purchases = append(s.purchases, e.TimeMillis)
	}
	return s
}
