package window

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strings"
	"time"

	"github.com/driftline/driftline/schemas"
)

// Sentinel errors of Update. The event is not applied in either case; the
// caller counts it and sends it to the DLQ with the reason.
var (
	// ErrLate: the event's time is before the watermark; the windows it
	// belongs to are closed (DLQ reason "late").
	ErrLate = errors.New("late: event time is before the watermark")
	// ErrFull: the event needs a new key and the engine holds MaxKeys
	// already (DLQ reason "state_full").
	ErrFull = errors.New("state full: the key budget is spent")
	// ErrUnknownType: the event's type is not a storefront event type.
	ErrUnknownType = errors.New("unknown event type")
)

// Config configures an Engine (one per partition).
type Config struct {
	// Definitions are the features; required (PurchasePropensity() for the
	// first model, or Load).
	Definitions *Definitions `yaml:"-"`
	// AllowedLateness is subtracted from the maximum event time seen to form
	// the watermark. 0 means the default, 1m.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// UserTTL and SessionTTL: a key idle (in event time, against the
	// watermark) for longer, with every window closed, is dropped. Defaults
	// 720h and 2h. Lifetime values of a dropped key start again from empty.
	UserTTL    time.Duration `yaml:"user_ttl"`
	SessionTTL time.Duration `yaml:"session_ttl"`
	// MaxKeys bounds the keys (users plus sessions) the engine holds; an
	// event that needs a new key beyond it is rejected with ErrFull.
	// Default 4,000,000.
	MaxKeys int `yaml:"max_keys"`
	// CallerWatermark: events do not move the watermark; only Advance does.
	// For a caller whose watermark is not the maximum event time minus the
	// lateness (the feature stage's waits for every input topic of the
	// partition). Rings are sized for AllowedLateness plus RingSlack: a
	// caller that holds the watermark further back than that behind the
	// newest event time sees Stats().Overflowed (and
	// driftline_window_overflows_total) for tumbling, hopping and session
	// windows.
	CallerWatermark bool `yaml:"-"`
	// RingSlack widens the rings of tumbling, hopping and session windows
	// for a caller whose watermark may lag the newest event time by more
	// than AllowedLateness (the feature stage's ring_slack). It
	// costs words per key (for windowed features only) and is part of the
	// layout, so changelog records written with another slack do not
	// restore (Restore refuses them; the caller skips them and the keys
	// start empty). Default 0.
	RingSlack time.Duration `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.AllowedLateness == 0 {
		c.AllowedLateness = time.Minute
	}
	if c.UserTTL == 0 {
		c.UserTTL = 720 * time.Hour
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 2 * time.Hour
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 4_000_000
	}
}

// Validate reports a configuration the engine cannot run with.
func (c *Config) Validate() error {
	if c.Definitions == nil {
		return errors.New("window: definitions are required")
	}
	if c.Definitions.compiled == nil {
		if err := c.Definitions.Validate(); err != nil {
			return err
		}
	}
	if c.AllowedLateness < 0 {
		return fmt.Errorf("window: allowed_lateness must be >= 0, got %s", c.AllowedLateness)
	}
	if c.UserTTL < 0 || c.SessionTTL < 0 {
		return fmt.Errorf("window: user_ttl and session_ttl must be >= 0, got %s and %s", c.UserTTL, c.SessionTTL)
	}
	if c.MaxKeys < 0 || c.MaxKeys > maxSlots {
		return fmt.Errorf("window: max_keys must be in [0, %d], got %d", maxSlots, c.MaxKeys)
	}
	if c.RingSlack < 0 {
		return fmt.Errorf("window: ring_slack must be >= 0, got %s", c.RingSlack)
	}
	return nil
}

// Result is a closed window, emitted when the watermark passes its end.
// Key is the engine's copy: valid until the key expires; clone it to keep it.
type Result struct {
	Feature int // index in the definitions
	Name    string
	Entity  Entity
	Key     string
	Start   int64 // Unix ms, inclusive
	End     int64 // Unix ms, exclusive
	Value   float64
	Events  int // matching events in the window
}

// Stats are an engine's counters since it was created.
type Stats struct {
	Events     int64 // applied
	Late       int64 // rejected with ErrLate
	Full       int64 // rejected with ErrFull
	Emitted    int64 // window results emitted
	Expired    int64 // keys dropped by TTL
	Overflowed int64 // contributions that found no window slot (must stay 0; see docs)
	Evicted    int64 // distinct values forgotten beyond max_distinct
	Keys       [numEntities]int
}

// Engine is the feature state of one partition. Not safe for concurrent
// use: one goroutine (the partition's) drives it.
type Engine struct {
	cfg      Config
	log      *slog.Logger
	m        *Metrics
	defs     []def
	lateness int64
	tables   [numEntities]*table
	maxTS    int64
	wm       int64
	timers   timerHeap
	scratch  []float64
	onClose  func(Result)
	stats    Stats

	// Overflow warnings are rate limited (wall time): one per
	// overflowLogEvery per engine, with the count since the last one.
	overflowLogAt time.Time
	overflowQuiet int64 // overflows not logged since overflowLogAt
}

// overflowLogEvery is the least wall time between two overflow warnings of
// an engine.
const overflowLogEvery = time.Minute

// New returns an engine for cfg. m may be nil (no metrics); share one
// Metrics between the engines of a process.
func New(cfg Config, log *slog.Logger, m *Metrics) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg: cfg, log: log, m: m, defs: cfg.Definitions.compiled,
		lateness: cfg.AllowedLateness.Milliseconds(),
		maxTS:    math.MinInt64, wm: math.MinInt64,
	}
	ttl := [numEntities]int64{cfg.UserTTL.Milliseconds(), cfg.SessionTTL.Milliseconds()}
	maxBucket := 0
	for ent := range numEntities {
		t := newTable(ent, ttl[ent])
		for i := range e.defs {
			if e.defs[i].entity == ent {
				l := newLayout(&e.defs[i], i, t.stride, e.lateness+cfg.RingSlack.Milliseconds())
				t.stride += l.nb * l.bw
				maxBucket = max(maxBucket, l.bw)
				t.feats = append(t.feats, l)
			}
		}
		for i, l := range t.feats {
			for ti, typ := range eventTypes {
				if l.d.kind != TriggerEvent && l.d.types&typeBit(typ) != 0 {
					t.byType[ti] = append(t.byType[ti], int32(i))
				}
			}
		}
		t.hash = layoutHash(t)
		e.tables[ent] = t
	}
	e.scratch = make([]float64, maxBucket)
	return e, nil
}

// OnClose sets the function that receives closed windows (nil: dropped).
// It runs inside Update or Advance; it must not call the engine.
func (e *Engine) OnClose(fn func(Result)) { e.onClose = fn }

// Watermark returns the event time (Unix ms) before which events are late;
// math.MinInt64 before the first event.
func (e *Engine) Watermark() int64 { return e.wm }

// Stats returns the counters.
func (e *Engine) Stats() Stats {
	s := e.stats
	for i, t := range e.tables {
		s.Keys[i] = t.live
	}
	return s
}

// Len is the length of a vector.
func (e *Engine) Len() int { return len(e.defs) }

// Release takes the engine's keys out of the shared driftline_window_keys
// gauge: call it when the engine is dropped (its partition revoked, or its
// state restored afresh after an aborted transaction), or the gauge counts
// the dropped keys forever. The engine must not be used afterwards.
func (e *Engine) Release() {
	for ent, t := range e.tables {
		if t != nil && t.live > 0 {
			e.m.keys(Entity(ent), -float64(t.live))
			t.live = 0
		}
	}
}

// Update applies an event: the watermark moves to its time minus the
// allowed lateness if that is later (closing windows and expiring keys),
// then the event lands in the windows its time belongs to. It returns
// ErrLate (time before the watermark) or ErrFull (a new key beyond
// MaxKeys) without applying anything. No allocation for known keys.
func (e *Engine) Update(ev *schemas.Event) error {
	bit := typeBit(ev.Type)
	if bit == 0 {
		return fmt.Errorf("cannot apply event %q: %w %q", ev.EventID, ErrUnknownType, ev.Type)
	}
	ts := ev.TimeMillis
	if ts < e.wm {
		e.stats.Late++
		e.m.late()
		return ErrLate
	}
	if ts > e.maxTS {
		e.maxTS = ts
		if wm := ts - e.lateness; wm > e.wm && !e.cfg.CallerWatermark {
			e.advance(wm)
		}
	}
	var slots [numEntities]int32
	missing := 0
	for ent, t := range e.tables {
		slots[ent] = -1
		if len(t.feats) == 0 {
			continue
		}
		if s, ok := e.lookup(Entity(ent), ev, slots[User]); ok {
			slots[ent] = s
		} else {
			missing++
		}
	}
	if missing > 0 && e.tables[User].live+e.tables[Session].live+missing > e.cfg.MaxKeys {
		e.stats.Full++
		e.m.full()
		return ErrFull
	}
	e.stats.Events++
	for ent, t := range e.tables {
		if len(t.feats) == 0 {
			continue
		}
		s := slots[ent]
		if s < 0 {
			s = t.create(keyOf(Entity(ent), ev))
			e.m.keys(Entity(ent), 1)
			slots[ent] = s
		}
		if ent == int(Session) && slots[User] >= 0 {
			e.tables[User].meta(slots[User]).setHint(s)
		}
		e.apply(t, s, ev, bit)
	}
	return nil
}

// lookup finds the slot of ev's key of an entity. A session is looked for
// first where its user's last session was (most events of a user are of
// one session), which saves a map lookup per event.
func (e *Engine) lookup(ent Entity, ev *schemas.Event, user int32) (int32, bool) {
	t := e.tables[ent]
	if ent == Session && user >= 0 {
		if h := e.tables[User].meta(user).hint(); h >= 0 && h < t.used {
			if m := t.meta(h); m.live() && m.key() == ev.SessionID {
				return h, true
			}
		}
	}
	return t.lookup(keyOf(ent, ev))
}

// Key returns the engine's own copy of a key it holds (cloned when the key
// was created), so a caller keeping the id beside the engine's state can
// share it instead of cloning the record's bytes again.
func (e *Engine) Key(ent Entity, key string) (string, bool) {
	t := e.tables[ent]
	s, ok := t.lookup(key)
	if !ok {
		return "", false
	}
	return t.meta(s).key(), true
}

func keyOf(ent Entity, ev *schemas.Event) string {
	if ent == User {
		return ev.UserID
	}
	return ev.SessionID
}

// Advance moves the watermark to wm if that is later (an idle partition's
// caller pushes event time by wall time), closing windows and expiring keys.
func (e *Engine) Advance(wm int64) {
	if wm > e.wm {
		e.advance(wm)
	}
}

// apply folds an event into one key's features.
func (e *Engine) apply(t *table, s int32, ev *schemas.Event, bit uint16) {
	ts := ev.TimeMillis
	w := t.words(s)
	m := t.meta(s)
	m.seen = max(m.seen, ts)
	due := m.seen + t.ttl
	for _, i := range t.byType[bits.TrailingZeros16(bit)] {
		l := &t.feats[i]
		d := l.d
		if !d.matches(ev, bit) {
			continue
		}
		v, h := 0.0, uint64(0)
		if d.sel == selString {
			str := d.field.of(ev)
			if str == "" {
				continue // an absent optional field is not a value
			}
			h = hashString(str)
		} else {
			v = d.value(ev)
		}
		var b []float64
		switch d.kind {
		case Lifetime:
			b = w[l.off : l.off+l.bw]
		case Tumbling, Hopping:
			p := floorDiv(ts, d.hop)
			i := int(mod(p, int64(l.nb)))
			b = w[l.off+i*l.bw : l.off+(i+1)*l.bw]
			start := p * d.hop
			if b[1] > 0 && int64(b[0]) != start {
				// Cannot happen while the watermark is the maximum event
				// time minus the lateness the ring was sized for.
				e.overflow(l.d, ts)
				clear(b)
			}
			b[0] = float64(start)
			due = min(due, start+d.hop)
		case SessionGap:
			b = e.sessionBucket(w[l.off:l.off+l.nb*l.bw], l, ts)
			if b == nil {
				e.overflow(l.d, ts)
				continue
			}
			due = min(due, int64(b[1])+d.gap)
		case TriggerEvent:
			continue
		}
		if d.pit > 0 {
			foldPIT(d, b, ts, v)
			continue
		}
		if ev := fold(d, b[l.hdr:], ts, v, h); ev > 0 {
			e.stats.Evicted += int64(ev)
		}
	}
	if due < m.due {
		e.schedule(t, s, due)
	}
	t.markDirty(s)
}

// overflow counts a contribution of feature d that found no window slot
// and warns, at most once per overflowLogEvery: the window data is lost.
func (e *Engine) overflow(d *def, ts int64) {
	e.stats.Overflowed++
	e.m.overflowed()
	e.overflowQuiet++
	if now := time.Now(); now.Sub(e.overflowLogAt) >= overflowLogEvery {
		e.log.Warn("window ring overflow: window data lost; the watermark lags the newest event time by more than the rings hold (allowed lateness plus ring slack)",
			"feature", d.name, "event_time_ms", ts, "watermark_ms", e.wm, "max_event_time_ms", e.maxTS,
			"overflows", e.overflowQuiet, "overflows_total", e.stats.Overflowed)
		e.overflowLogAt, e.overflowQuiet = now, 0
	}
}

// sessionBucket returns the session window of a feature that an event at ts
// belongs to, merging windows it bridges, or nil when every slot is taken.
func (e *Engine) sessionBucket(ws []float64, l *layout, ts int64) []float64 {
	gap := l.d.gap
	var into []float64
	free := -1
	for i := range l.nb {
		b := ws[i*l.bw : (i+1)*l.bw]
		if b[2] == 0 {
			if free < 0 {
				free = i
			}
			continue
		}
		start, end := int64(b[0]), int64(b[1])
		if ts <= start-gap || ts >= end+gap {
			continue
		}
		if into == nil {
			into = b
			continue
		}
		merge(l.d, into[2:], b[2:])
		into[0] = math.Min(into[0], b[0])
		into[1] = math.Max(into[1], b[1])
		clear(b)
	}
	if into == nil {
		if free < 0 {
			return nil
		}
		into = ws[free*l.bw : (free+1)*l.bw]
		into[0], into[1] = float64(ts), float64(ts)
		return into
	}
	into[0] = math.Min(into[0], float64(ts))
	into[1] = math.Max(into[1], float64(ts))
	return into
}

// Vector writes the values of every feature, in definition order, for the
// user and session of ev read at ev's event time: the windows that contain
// it, open ones included. out must have Len() elements. Call it after
// Update(ev) so the trigger event counts. No allocation.
func (e *Engine) Vector(ev *schemas.Event, out []float64) {
	_ = out[len(e.defs)-1]
	ts := ev.TimeMillis
	bit := typeBit(ev.Type)
	user := int32(-1)
	for ent, t := range e.tables {
		if len(t.feats) == 0 {
			continue
		}
		s, ok := e.lookup(Entity(ent), ev, user)
		var w []float64
		if ok {
			w = t.words(s)
			if Entity(ent) == User {
				user = s
			}
		}
		for i := range t.feats {
			l := &t.feats[i]
			d := l.d
			if d.kind == TriggerEvent {
				out[l.idx] = e.eventValue(d, ev, bit)
				continue
			}
			if w == nil {
				out[l.idx] = d.deflt
				continue
			}
			out[l.idx] = e.read(l, w, ts)
		}
	}
}

// eventValue is a feature over the trigger event alone.
func (e *Engine) eventValue(d *def, ev *schemas.Event, bit uint16) float64 {
	if !d.matches(ev, bit) {
		return d.deflt
	}
	b := e.scratch[:bucketWords(d)]
	clear(b)
	v, h := 0.0, uint64(0)
	if d.sel == selString {
		str := d.field.of(ev)
		if str == "" {
			return d.deflt
		}
		h = hashString(str)
	} else {
		v = d.value(ev)
	}
	fold(d, b, ev.TimeMillis, v, h)
	return final(d, b, ev.TimeMillis)
}

// read returns a feature's value at event time t from a key's words.
func (e *Engine) read(l *layout, w []float64, t int64) float64 {
	d := l.d
	ws := w[l.off : l.off+l.nb*l.bw]
	switch d.kind {
	case Lifetime:
		if d.pit > 0 {
			return readPIT(d, ws, e.scratch[:bucketWords(d)], t)
		}
		return final(d, ws, t)
	case Tumbling:
		p := floorDiv(t, d.hop)
		i := int(mod(p, int64(l.nb)))
		b := ws[i*l.bw : (i+1)*l.bw]
		if b[1] == 0 || int64(b[0]) != p*d.hop {
			return d.deflt
		}
		return final(d, b[1:], t)
	case Hopping:
		start := (floorDiv(t, d.hop) - d.size/d.hop + 1) * d.hop
		acc := e.scratch[:l.bw-1]
		e.sumPanes(l, ws, start, acc)
		return final(d, acc, t)
	case SessionGap:
		for i := range l.nb {
			b := ws[i*l.bw : (i+1)*l.bw]
			if b[2] > 0 && int64(b[0]) <= t && t < int64(b[1])+d.gap {
				return final(d, b[2:], t)
			}
		}
	}
	return d.deflt
}

// sumPanes merges the panes of the hopping window [start, start+size) into
// acc (the aggregate part of a bucket).
func (e *Engine) sumPanes(l *layout, ws []float64, start int64, acc []float64) {
	clear(acc)
	d := l.d
	for i := range l.nb {
		b := ws[i*l.bw : (i+1)*l.bw]
		if b[1] == 0 {
			continue
		}
		if ps := int64(b[0]); ps >= start && ps < start+d.size {
			e.stats.Evicted += int64(merge(d, acc, b[1:]))
		}
	}
}

// advance moves the watermark to wm: every window that ends at or before
// it is emitted and cleared, and idle keys expire.
func (e *Engine) advance(wm int64) {
	old := e.wm
	e.wm = wm
	for len(e.timers) > 0 {
		r := e.timers[0]
		t := e.tables[r>>31]
		s := int32(r &^ (1 << 31))
		m := t.meta(s)
		if m.due > wm {
			break
		}
		e.unschedule(t, s)
		next, open := e.close(t, s, old, wm)
		if !open && m.seen+t.ttl <= wm {
			e.expire(t, s)
			continue
		}
		if exp := m.seen + t.ttl; !open {
			next = exp
		} else if exp > wm && exp < next {
			next = exp
		}
		e.schedule(t, s, next)
	}
}

// close emits and clears a key's windows that end in (old, wm] and returns
// the end of its next open window and whether there is one. Windows that
// ended at or before old were emitted when the watermark passed old.
func (e *Engine) close(t *table, s int32, old, wm int64) (next int64, open bool) {
	w := t.words(s)
	next = math.MaxInt64
	changed := false
	for i := range t.feats {
		l := &t.feats[i]
		d := l.d
		ws := w[l.off : l.off+l.nb*l.bw]
		switch d.kind {
		case Tumbling, Hopping:
			lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
			for j := range l.nb {
				if b := ws[j*l.bw : (j+1)*l.bw]; b[1] > 0 {
					lo, hi = min(lo, int64(b[0])), max(hi, int64(b[0]))
				}
			}
			if hi == math.MinInt64 {
				continue
			}
			// Windows [w, w+size) holding a pane in [lo, hi] that end in (old, wm].
			from := max(lo-d.size+d.hop, ceilTo(satSub(old, d.size)+1, d.hop))
			for ws0 := from; ws0 <= hi && ws0+d.size <= wm; ws0 += d.hop {
				acc := e.scratch[:l.bw-1]
				e.sumPanes(l, ws, ws0, acc)
				if acc[0] > 0 {
					e.emit(l, t, s, ws0, ws0+d.size, acc)
				}
			}
			for j := range l.nb {
				b := ws[j*l.bw : (j+1)*l.bw]
				if b[1] == 0 {
					continue
				}
				p := int64(b[0])
				if p+d.size <= wm {
					clear(b)
					changed = true
					continue
				}
				open = true
				// The first window holding pane p that ends after wm.
				end := p + d.hop
				if end <= wm {
					end += (wm-end)/d.hop*d.hop + d.hop
				}
				next = min(next, end)
			}
		case SessionGap:
			for j := range l.nb {
				b := ws[j*l.bw : (j+1)*l.bw]
				if b[2] == 0 {
					continue
				}
				end := int64(b[1]) + d.gap
				if end <= wm {
					e.emit(l, t, s, int64(b[0]), end, b[2:])
					clear(b)
					changed = true
					continue
				}
				open = true
				next = min(next, end)
			}
		}
	}
	if changed {
		t.markDirty(s)
	}
	return next, open
}

func (e *Engine) emit(l *layout, t *table, s int32, start, end int64, agg []float64) {
	e.stats.Emitted++
	e.m.emitted()
	if e.onClose == nil {
		return
	}
	e.onClose(Result{
		Feature: l.idx, Name: l.d.name, Entity: t.ent, Key: t.meta(s).key(),
		Start: start, End: end, Value: final(l.d, agg, end), Events: int(agg[0]),
	})
}

func (e *Engine) expire(t *table, s int32) {
	e.stats.Expired++
	e.m.expired(t.ent)
	e.unschedule(t, s)
	t.remove(s)
}

// floorDiv and mod round toward negative infinity.
func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// ceilTo rounds a up to a multiple of m.
func ceilTo(a, m int64) int64 { return -floorDiv(-a, m) * m }

func satSub(a, b int64) int64 {
	if a < math.MinInt64+b {
		return math.MinInt64 + b
	}
	return a - b
}

// hashString is FNV-1a, 64 bits: stable across processes, so distinct sets
// survive the changelog.
func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// String describes the engine for logs.
func (e *Engine) String() string {
	var b strings.Builder
	for _, t := range e.tables {
		fmt.Fprintf(&b, "%s: %d features, %d words per key; ", t.ent, len(t.feats), t.stride)
	}
	return strings.TrimSuffix(b.String(), "; ")
}
