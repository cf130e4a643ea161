package window

import (
	"errors"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/schemas"
)

type changelog map[[2]string][]byte // (entity, key) -> record

// drain writes the engine's changes since the last call into the log, as a
// caller writes changelog records at the end of a transaction.
func (c changelog) drain(e *Engine) (written, tombstones int) {
	e.Changes(func(ent Entity, key string, deleted bool) {
		k := [2]string{ent.String(), key}
		if deleted {
			delete(c, k)
			tombstones++
			return
		}
		b, ok := e.AppendState(ent, key, nil)
		if !ok {
			panic("changed key without state: " + key)
		}
		c[k] = b
		written++
	})
	return written, tombstones
}

func (c changelog) restore(t *testing.T, cfg Config, meta []byte) *Engine {
	t.Helper()
	e, err := New(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.RestoreMeta(meta); err != nil {
		t.Fatal(err)
	}
	for k, v := range c {
		ent := User
		if k[0] == "session" {
			ent = Session
		}
		if err := e.Restore(ent, k[1], v); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestRestoreMidStream checkpoints the changed keys every 40 events, as
// transactions would, then rebuilds a fresh engine from the changelog at
// several points of the golden stream: from there on, its vectors, late
// verdicts and window results equal those of the engine that never stopped.
// Short TTLs make keys expire (tombstones) while the stream runs.
func TestRestoreMidStream(t *testing.T) {
	defs, evs, _, _ := loadGolden(t)
	cfg := goldenConfig(defs)
	cfg.SessionTTL, cfg.UserTTL = 4*time.Minute, 9*time.Minute
	for _, cut := range []int{40, 200, 400} {
		a, err := New(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		log := changelog{}
		var meta []byte
		written, tombs := 0, 0
		for i := 0; i < cut; i++ {
			_ = a.Update(&evs[i])
			if (i+1)%40 == 0 || i == cut-1 {
				w, d := log.drain(a)
				written, tombs = written+w, tombs+d
				meta = a.AppendMeta(meta[:0])
			}
		}
		if written == 0 {
			t.Fatal("no changelog records written")
		}
		b := log.restore(t, cfg, meta)
		var wa, wb []Result
		a.OnClose(func(r Result) { wa = append(wa, r) })
		b.OnClose(func(r Result) { wb = append(wb, r) })
		va, vb := make([]float64, a.Len()), make([]float64, b.Len())
		for i := cut; i < len(evs); i++ {
			ea, eb := a.Update(&evs[i]), b.Update(&evs[i])
			if !errors.Is(eb, ea) && eb != ea {
				t.Fatalf("cut %d, event %d: restored engine says %v, original %v", cut, i, eb, ea)
			}
			if ea != nil {
				continue
			}
			a.Vector(&evs[i], va)
			b.Vector(&evs[i], vb)
			if !slices.Equal(va, vb) {
				t.Fatalf("cut %d, event %d: restored vector %v, original %v", cut, i, vb, va)
			}
			if i%40 == 0 {
				log.drain(a)
			}
		}
		a.Advance(math.MaxInt64)
		b.Advance(math.MaxInt64)
		sortResults(wa)
		sortResults(wb)
		if len(wa) == 0 || !slices.Equal(wa, wb) {
			t.Fatalf("cut %d: restored engine emitted %d windows, original %d (equal: %v)", cut, len(wb), len(wa), slices.Equal(wa, wb))
		}
		if cut == 400 && tombs == 0 {
			t.Fatalf("cut %d: no key expired before the cut; the TTLs do not exercise tombstones", cut)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	st := State{Entity: Session, Layout: 0xdeadbeef, Seen: 1_795_000_000_123, Words: []float64{0, 1, 0, -2.5, math.Float64frombits(0x8000000000000001), 0, 0, 0, 7}}
	b, err := st.AppendBinary([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if b[6] != stateVersion {
		t.Fatalf("leading byte %d, want version %d", b[6], stateVersion)
	}
	var got State
	got.Words = make([]float64, 0, 1)
	if err := got.UnmarshalBinary(b[6:]); err != nil {
		t.Fatal(err)
	}
	if got.Entity != st.Entity || got.Layout != st.Layout || got.Seen != st.Seen || len(got.Words) != len(st.Words) {
		t.Fatalf("got %+v, want %+v", got, st)
	}
	for i := range st.Words {
		if math.Float64bits(got.Words[i]) != math.Float64bits(st.Words[i]) {
			t.Fatalf("word %d: %x, want %x", i, math.Float64bits(got.Words[i]), math.Float64bits(st.Words[i]))
		}
	}
	// 4 non-zero words of 9: 6 header + 1 seen varint(6 bytes) + 1 count + 2 bitmap + 32.
	if n := len(b) - 6; n > 6+8+1+2+32 {
		t.Fatalf("encoding is %d bytes", n)
	}
	for _, bad := range [][]byte{nil, {2, 0, 0, 0, 0, 0, 0}, b[6 : len(b)-1], append(slices.Clone(b[6:]), 0)} {
		if err := got.UnmarshalBinary(bad); err == nil {
			t.Errorf("UnmarshalBinary(%x): no error", bad)
		}
	}
}

func TestRestoreRejectsOtherLayout(t *testing.T) {
	defs, evs, _, _ := loadGolden(t)
	a, _ := New(goldenConfig(defs), nil, nil)
	_ = a.Update(&evs[0])
	rec, ok := a.AppendState(User, evs[0].UserID, nil)
	if !ok {
		t.Fatal("no state")
	}
	cfg := goldenConfig(defs)
	cfg.AllowedLateness = 5 * time.Minute // other ring sizes
	b, _ := New(cfg, nil, nil)
	if err := b.Restore(User, evs[0].UserID, rec); err == nil {
		t.Fatal("a record of another layout restored")
	}
	p, _ := New(Config{Definitions: PurchasePropensity()}, nil, nil)
	if err := p.Restore(User, evs[0].UserID, rec); err == nil {
		t.Fatal("a record of other definitions restored")
	}
	// The right layout with an impossible count (the first word of the
	// first bucket is an event count) is corrupt, not restored.
	var st State
	if err := st.UnmarshalBinary(rec); err != nil {
		t.Fatal(err)
	}
	c, _ := New(goldenConfig(defs), nil, nil)
	if err := c.Restore(User, "ok", rec); err != nil {
		t.Fatalf("a valid record: %v", err)
	}
	for _, bad := range []float64{-1, 0.5} {
		st.Words[0] = bad
		b, _ := st.AppendBinary(nil)
		if err := c.Restore(User, "bad", b); !errors.Is(err, errCorrupt) {
			t.Fatalf("count %v: got %v, want a corrupt-record error", bad, err)
		}
	}
	if c.Stats().Keys[User] != 1 {
		t.Fatalf("keys %v: a rejected record created a key", c.Stats().Keys)
	}
}

func cartEvent(user, session string, ms int64, typ string) schemas.Event {
	e := schemas.NewEvent()
	e.EventID, e.Type, e.UserID, e.SessionID, e.TimeMillis = "e", typ, user, session, ms
	e.ProductID, e.Price, e.Quantity = "p1", 10, 1
	e.CartValue, e.Items = 10, 1
	e.OrderID, e.Amount, e.Currency = "o", 10, "EUR"
	return e
}

func TestLateExpiryAndBudget(t *testing.T) {
	defs, err := Parse([]byte(`
features:
  - {name: n, entity: session, events: [add_to_cart], aggregation: count, window: {kind: tumbling, size: 1m}}
  - {name: life, entity: user, events: [add_to_cart], aggregation: count}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Definitions: defs, AllowedLateness: 10 * time.Second, SessionTTL: 5 * time.Minute, UserTTL: 10 * time.Minute, MaxKeys: 3}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var closed []Result
	e.OnClose(func(r Result) { closed = append(closed, r) })
	t0 := int64(29_916_667 * 60_000) // a whole minute
	upd := func(u, s string, ms int64) error {
		ev := cartEvent(u, s, ms, schemas.AddToCart)
		return e.Update(&ev)
	}
	if err := upd("u1", "s1", t0+30_000); err != nil {
		t.Fatal(err)
	}
	if err := upd("u1", "s1", t0+25_000); err != nil { // out of order, within lateness
		t.Fatal(err)
	}
	if err := upd("u1", "s1", t0+10_000); !errors.Is(err, ErrLate) { // before wm = 20 s
		t.Fatalf("want ErrLate, got %v", err)
	}
	// The 1-minute window [t0, t0+60s) closes when the watermark reaches t0+60s.
	if err := upd("u1", "s1", t0+65_000); err != nil || len(closed) != 0 {
		t.Fatalf("err %v, closed %v: the window must stay open until the watermark passes its end", err, closed)
	}
	if err := upd("u1", "s1", t0+70_000); err != nil || len(closed) != 1 || closed[0].Value != 2 || closed[0].Start != t0 {
		t.Fatalf("err %v, closed %+v: want the window [t0, t0+1m) with 2 events", err, closed)
	}
	// Budget: u1, s1 and s2 fill 3 keys; a new user and session are refused whole.
	if err := upd("u1", "s2", t0+71_000); err != nil {
		t.Fatal(err)
	}
	if err := upd("u2", "s3", t0+72_000); !errors.Is(err, ErrFull) {
		t.Fatalf("want ErrFull, got %v", err)
	}
	if s := e.Stats(); s.Full != 1 || s.Late != 1 || s.Keys != [numEntities]int{1, 2} {
		t.Fatalf("stats %+v", s)
	}
	e.Changes(func(Entity, string, bool) {})
	// Six idle minutes of s1 and s2 later (in event time), the sessions expire; u1 stays.
	e.Advance(t0 + 71_000 + 6*60_000)
	var tombs []string
	e.Changes(func(ent Entity, key string, deleted bool) {
		if deleted {
			tombs = append(tombs, ent.String()+"/"+key)
		}
	})
	slices.Sort(tombs)
	if !slices.Equal(tombs, []string{"session/s1", "session/s2"}) {
		t.Fatalf("tombstones %v", tombs)
	}
	if err := upd("u2", "s3", t0+71_000+7*60_000); err != nil {
		t.Fatalf("after expiry the budget has room: %v", err)
	}
	vec := make([]float64, 2)
	ev := cartEvent("u1", "s9", t0+71_000+7*60_000, schemas.AddToCart)
	e.Vector(&ev, vec) // s9 unknown: default; u1 lifetime: 5 adds (the late one not counted)
	if vec[0] != 0 || vec[1] != 5 {
		t.Fatalf("vector %v, want [0 5]", vec)
	}
}

// TestZeroAllocs guards the hot path: Update and Vector of known keys, and
// Changes with AppendState into a reused buffer, allocate nothing: for the
// first model's definitions, and for the golden ones (every window kind,
// windows closing and emitting as the stream goes).
func TestZeroAllocs(t *testing.T) {
	var evs []schemas.Event
	for i := range 64 {
		typ := []string{schemas.ProductView, schemas.AddToCart, schemas.PageView, schemas.CheckoutStart, schemas.Purchase}[i%5]
		evs = append(evs, cartEvent([]string{"u1", "u2"}[i%2], []string{"s1", "s2"}[i%2], 1_795_000_000_000+int64(i)*1000, typ))
	}
	golden, gevs, _, _ := loadGolden(t)
	for _, c := range []struct {
		name string
		defs *Definitions
		evs  []schemas.Event
	}{{"purchase_propensity", PurchasePropensity(), evs}, {"golden", golden, gevs}} {
		e, err := New(Config{Definitions: c.defs, SessionTTL: 1000 * time.Hour, UserTTL: 1000 * time.Hour}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		closed := 0
		e.OnClose(func(Result) { closed++ })
		stream := slices.Clone(c.evs)
		span := int64(0)
		for i := range stream {
			_ = e.Update(&stream[i])
			span = max(span, stream[i].TimeMillis)
		}
		span -= stream[0].TimeMillis - 3_600_000
		vec := make([]float64, e.Len())
		buf := make([]byte, 0, 4096)
		i := 0
		allocs := testing.AllocsPerRun(2*len(stream), func() {
			ev := &stream[i%len(stream)]
			ev.TimeMillis += span // the next lap, an hour later
			i++
			if e.Update(ev) == nil {
				e.Vector(ev, vec)
			}
			if i%16 == 0 {
				e.Changes(func(ent Entity, key string, deleted bool) {
					buf, _ = e.AppendState(ent, key, buf[:0])
				})
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per event, want 0", c.name, allocs)
		}
		if c.name == "golden" && closed == 0 {
			t.Errorf("%s: no window closed while measuring", c.name)
		}
	}
}

func sortResults(rs []Result) {
	slices.SortFunc(rs, func(a, b Result) int {
		if a.Feature != b.Feature {
			return a.Feature - b.Feature
		}
		if a.Key != b.Key {
			return cmpStr(a.Key, b.Key)
		}
		return int(a.Start - b.Start)
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg)
	defs, evs, want, _ := loadGolden(t)
	// Two partitions' engines share one Metrics.
	a, _ := New(goldenConfig(defs), nil, m)
	b, _ := New(goldenConfig(defs), nil, m)
	late := 0
	for i := range evs {
		_ = a.Update(&evs[i])
		_ = b.Update(&evs[i])
		if want[i].Late {
			late += 2
		}
	}
	if got := testutil.ToFloat64(m.lateTotal); got != float64(late) {
		t.Fatalf("late total %v, want %d", got, late)
	}
	keys := a.Stats().Keys[Session] + b.Stats().Keys[Session]
	if got := testutil.ToFloat64(m.keysGauge[Session]); got != float64(keys) {
		t.Fatalf("session keys gauge %v, want %d", got, keys)
	}
	a.Advance(math.MaxInt64)
	b.Advance(math.MaxInt64)
	if got, want := testutil.ToFloat64(m.emittedTotal), float64(a.Stats().Emitted+b.Stats().Emitted); got != want || want == 0 {
		t.Fatalf("emitted %v, engines say %v", got, want)
	}
	// At +inf every key has expired and the gauges are back to 0.
	if got := testutil.ToFloat64(m.expiredTotal[Session]); got != float64(2*len(keysOf(evs, Session))) {
		t.Fatalf("expired sessions %v, want %d", got, 2*len(keysOf(evs, Session)))
	}
	if testutil.ToFloat64(m.keysGauge[User]) != 0 || testutil.ToFloat64(m.keysGauge[Session]) != 0 {
		t.Fatal("keys gauge not 0 after every key expired")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n < 5 {
		t.Fatalf("gathered %d series: %v", n, err)
	}
}

func keysOf(evs []schemas.Event, ent Entity) map[string]bool {
	m := map[string]bool{}
	for _, e := range evs {
		m[keyOf(ent, &e)] = true
	}
	return m
}

// TestRecordSize keeps the changelog records of the first model's keys
// small: most words of a key are zero and are not written.
func TestRecordSize(t *testing.T) {
	e, err := New(Config{Definitions: PurchasePropensity()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, typ := range []string{schemas.PageView, schemas.ProductView, schemas.AddToCart, schemas.CheckoutStart, schemas.Purchase} {
		ev := cartEvent("u1", "s1", 1_795_000_000_000+int64(i)*1000, typ)
		ev.Device, ev.Referrer = "mobile", "ads"
		if err := e.Update(&ev); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := e.AppendState(User, "u1", nil)
	s, _ := e.AppendState(Session, "s1", nil)
	t.Logf("records: user %d bytes, session %d bytes (%s)", len(u), len(s), e)
	if len(u) > 120 || len(s) > 200 {
		t.Fatalf("records of %d and %d bytes", len(u), len(s))
	}
}

// TestSessionBridge: an out-of-order event closer than the gap to two
// session windows merges them into one.
func TestSessionBridge(t *testing.T) {
	defs, err := Parse([]byte(`
features:
  - {name: n, entity: user, events: [add_to_cart], aggregation: count, window: {kind: session, gap: 3m}}
  - {name: first, entity: user, events: [add_to_cart], aggregation: time_since_first, unit: m, window: {kind: session, gap: 3m}}
`))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Definitions: defs, AllowedLateness: 10 * time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var closed []Result
	e.OnClose(func(r Result) { closed = append(closed, r) })
	vec := make([]float64, 2)
	at := func(min float64) []float64 {
		ev := cartEvent("u", "s", int64(min*60_000), schemas.AddToCart)
		if err := e.Update(&ev); err != nil {
			t.Fatal(err)
		}
		e.Vector(&ev, vec)
		return slices.Clone(vec)
	}
	if v := at(100); !slices.Equal(v, []float64{1, 0}) {
		t.Fatalf("%v", v)
	}
	if v := at(105); !slices.Equal(v, []float64{1, 0}) { // 5 min later: a second session
		t.Fatalf("%v", v)
	}
	if v := at(102.5); !slices.Equal(v, []float64{3, 2.5}) { // within 3 min of both: one session [100, 105]
		t.Fatalf("bridging event read %v, want [3 2.5]", v)
	}
	e.Advance(105*60_000 + 3*60_000)
	if len(closed) != 2 || closed[0].Start != 100*60_000 || closed[0].End != 108*60_000 || closed[0].Value != 3 || closed[1].Value != 8 {
		t.Fatalf("closed %+v, want one session [100 min, 108 min) with 3 events, the first 8 min before its end", closed)
	}
}

// FuzzStateUnmarshal: a corrupt changelog record is an error, never a panic
// nor a state of the wrong size.
func FuzzStateUnmarshal(f *testing.F) {
	st := State{Entity: User, Layout: 7, Seen: 123, Words: []float64{0, 1, 2, 0, 0, 0, 0, 0, 0, 9}}
	b, _ := st.AppendBinary(nil)
	f.Add(b)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0})
	e, _ := New(Config{Definitions: PurchasePropensity()}, nil, nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		var s State
		if err := s.UnmarshalBinary(b); err == nil {
			out, _ := s.AppendBinary(nil)
			var s2 State
			if err := s2.UnmarshalBinary(out); err != nil || len(s2.Words) != len(s.Words) {
				t.Fatalf("re-encoding does not decode: %v", err)
			}
		}
		_ = e.Restore(User, "u", b)
		_ = e.Restore(Session, "s", b)
	})
}

// TestKeyIndex runs random creates, lookups and removes against a map: the
// open-addressing index with backward-shift deletion finds every live key
// and no dropped one, through growth and probe runs that wrap around.
func TestKeyIndex(t *testing.T) {
	tb := newTable(Session, 0)
	tb.stride = 1
	model := map[string]int32{}
	rng := rand.New(rand.NewPCG(3, 4))
	key := func() string { return "k" + strconv.Itoa(rng.IntN(5000)) }
	for op := range 200_000 {
		k := key()
		s, _, ok := tb.index.find(tb, k)
		ms, mok := model[k]
		if ok != mok || ok && s != ms {
			t.Fatalf("op %d: find(%s) = %d, %v; want %d, %v", op, k, s, ok, ms, mok)
		}
		switch {
		case !ok:
			model[k] = tb.create(k)
		case rng.IntN(2) == 0:
			tb.remove(s)
			delete(model, k)
		}
		if tb.index.n != len(model) || tb.live != len(model) {
			t.Fatalf("op %d: index holds %d, table %d, want %d", op, tb.index.n, tb.live, len(model))
		}
	}
	for k, s := range model {
		if got, _, ok := tb.index.find(tb, k); !ok || got != s {
			t.Fatalf("%s: %d, %v; want %d", k, got, ok, s)
		}
	}
}

// TestOverflowIsCounted: a caller that holds the watermark back more than a
// ring holds loses window data; the loss is counted in Stats, in
// driftline_window_overflows_total and warned about once per minute, naming
// the feature. RingSlack sized for the lag keeps every window.
func TestOverflowIsCounted(t *testing.T) {
	defs, err := Parse([]byte(`
features:
  - {name: adds_1m, entity: session, events: [add_to_cart], aggregation: count, window: {kind: tumbling, size: 1m}}
  - {name: adds_gap, entity: session, events: [add_to_cart], aggregation: count, window: {kind: session, gap: 1m}}
`))
	if err != nil {
		t.Fatal(err)
	}
	t0 := int64(29_916_667 * 60_000) // a whole minute
	// Minutes 0, 3, 6 and 9: four windows of each feature while the
	// caller's watermark stays before t0.
	run := func(slack time.Duration) (*Engine, *Metrics, string, []Result) {
		reg := prometheus.NewPedanticRegistry()
		m := NewMetrics(reg)
		var logs strings.Builder
		log := slog.New(slog.NewTextHandler(&logs, nil))
		e, err := New(Config{Definitions: defs, AllowedLateness: 10 * time.Second, CallerWatermark: true, RingSlack: slack}, log, m)
		if err != nil {
			t.Fatal(err)
		}
		var closed []Result
		e.OnClose(func(r Result) { closed = append(closed, r) })
		e.Advance(t0)
		for i := range int64(4) {
			ev := cartEvent("u1", "s1", t0+i*3*60_000, schemas.AddToCart)
			if err := e.Update(&ev); err != nil {
				t.Fatal(err)
			}
		}
		e.Advance(t0 + time.Hour.Milliseconds())
		return e, m, logs.String(), closed
	}

	e, m, logs, closed := run(0)
	// Tumbling: ceil(70s/1m)+1 = 3 panes, so minutes 3, 6 and 9 each land
	// on the open pane of the one before (3 overflows, one window left);
	// session: ceil(10s/1m)+2 = 3 slots, so minute 9 finds none (1).
	if got := e.Stats().Overflowed; got != 4 {
		t.Fatalf("overflowed %d, want 4", got)
	}
	if got := testutil.ToFloat64(m.overflows); got != 4 {
		t.Fatalf("driftline_window_overflows_total %v, want 4", got)
	}
	if n := strings.Count(logs, "window ring overflow"); n != 1 || !strings.Contains(logs, "feature=adds_1m") {
		t.Fatalf("want one rate-limited warning naming adds_1m, got:\n%s", logs)
	}
	if len(closed) != 1+3 {
		t.Fatalf("%d windows closed, want 4 (1 tumbling, 3 session): %+v", len(closed), closed)
	}

	e, m, logs, closed = run(10 * time.Minute)
	if got := e.Stats().Overflowed; got != 0 || testutil.ToFloat64(m.overflows) != 0 || logs != "" {
		t.Fatalf("with ring slack: overflowed %d, counter %v, logs %q", got, testutil.ToFloat64(m.overflows), logs)
	}
	if len(closed) != 8 {
		t.Fatalf("with ring slack: %d windows closed, want 8", len(closed))
	}
	for _, r := range closed {
		if r.Value != 1 {
			t.Fatalf("window %+v: want 1 event", r)
		}
	}
}
