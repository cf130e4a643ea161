package window_test

import (
	stdjson "encoding/json"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// benchStream is a simulated storefront (30 min, 3000 users) in event-time
// order, cycled with shifted times so every pass moves the watermark on.
func benchStream(b *testing.B) []schemas.Event {
	b.Helper()
	t := &testing.T{}
	evs := simulated(t, 30*time.Minute)
	if len(evs) == 0 {
		b.Fatal("no events")
	}
	return evs
}

// BenchmarkCatalog runs the 15 features of the first model per event
// (update, and the vector on trigger events) through the YAML engine and,
// in the same run as the baseline, through the frozen hand-written catalog.
//
//	go test ./features/window -run '^$' -bench Catalog -benchtime 1s
func BenchmarkCatalog(b *testing.B) {
	evs := benchStream(b)
	span := evs[len(evs)-1].TimeMillis - evs[0].TimeMillis + 60_000
	b.Run("engine=yaml", func(b *testing.B) {
		eng, err := window.New(window.Config{Definitions: window.PurchasePropensity()}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		vec := make([]float64, eng.Len())
		stream := append([]schemas.Event(nil), evs...)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			e := &stream[i%len(stream)]
			if i > 0 && i%len(stream) == 0 {
				b.StopTimer()
				for j := range stream {
					stream[j].TimeMillis += span
				}
				b.StartTimer()
			}
			if err := eng.Update(e); err != nil {
				b.Fatal(err)
			}
			if schemas.IsCartEvent(e.Type) {
				eng.Vector(e, vec)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("engine=handwritten", func(b *testing.B) {
		hw := &handWritten{sessions: map[string]*hwSession{}, users: map[string]*hwUser{}}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			e := &evs[i%len(evs)]
			s := hw.apply(e)
			if schemas.IsCartEvent(e.Type) {
				_ = hw.compute(e, s)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkCatalogInterleaved measures the same two in alternating slices
// of 10,000 events, so a noisy shared machine slows both alike, and reports
// the ratio of their costs (yaml/handwritten):
//
//	go test ./features/window -run '^$' -bench CatalogInterleaved -benchtime 200x
func BenchmarkCatalogInterleaved(b *testing.B) {
	evs := benchStream(b)
	span := evs[len(evs)-1].TimeMillis - evs[0].TimeMillis + 60_000
	eng, err := window.New(window.Config{Definitions: window.PurchasePropensity()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	hw := &handWritten{sessions: map[string]*hwSession{}, users: map[string]*hwUser{}}
	vec := make([]float64, eng.Len())
	stream := append([]schemas.Event(nil), evs...)
	const slice = 10_000
	var yaml, hand time.Duration
	pos := 0
	for range b.N {
		if pos+slice > len(stream) {
			for j := range stream {
				stream[j].TimeMillis += span
			}
			pos = 0
		}
		part := stream[pos : pos+slice]
		start := time.Now()
		for i := range part {
			e := &part[i]
			if err := eng.Update(e); err != nil {
				b.Fatal(err)
			}
			if schemas.IsCartEvent(e.Type) {
				eng.Vector(e, vec)
			}
		}
		mid := time.Now()
		for i := range part {
			e := &part[i]
			s := hw.apply(e)
			if schemas.IsCartEvent(e.Type) {
				_ = hw.compute(e, s)
			}
		}
		yaml, hand = yaml+mid.Sub(start), hand+time.Since(mid)
		pos += slice
	}
	n := float64(b.N * slice)
	b.ReportMetric(float64(yaml.Nanoseconds())/n, "yaml-ns/event")
	b.ReportMetric(float64(hand.Nanoseconds())/n, "handwritten-ns/event")
	b.ReportMetric(float64(yaml)/float64(hand), "ratio")
	b.ReportMetric(n/yaml.Seconds(), "yaml-events/s")
}

// stateBytes returns the heap bytes per active user (one user and one
// session key, each with product views, cart adds and a purchase) of an
// engine holding n users with the first model's definitions.
func stateBytes(tb testing.TB, n int, prefix string) float64 {
	tb.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	eng, err := window.New(window.Config{Definitions: window.PurchasePropensity(), MaxKeys: 2*n + 1}, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	e := schemas.NewEvent()
	e.EventID, e.Device, e.Referrer, e.Country = "e", "mobile", "ads", "DE"
	e.ProductID, e.Price, e.Quantity, e.Amount, e.OrderID, e.Currency = "p-123", 19.5, 2, 39, "o", "EUR"
	t0 := int64(1_795_000_000_000)
	var buf []byte
	for i := range n {
		buf = strconv.AppendInt(append(append(buf[:0], prefix...), "u-"...), int64(i), 10)
		e.UserID = string(buf)
		buf = strconv.AppendInt(append(append(buf[:0], prefix...), "s-"...), int64(i), 10)
		e.SessionID = string(buf)
		for k, typ := range []string{schemas.PageView, schemas.ProductView, schemas.AddToCart, schemas.Purchase} {
			e.Type, e.TimeMillis = typ, t0+int64(i)/16+int64(k)
			if err := eng.Update(&e); err != nil {
				tb.Fatal(err)
			}
		}
	}
	if eng.Stats().Keys != [2]int{n, n} {
		tb.Fatalf("keys %v, want %d users and %d sessions", eng.Stats().Keys, n, n)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(eng)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// TestStateBytesPerUser keeps the state of an active user (its user key and
// one session key) within the 512-byte target, at 200k users.
func TestStateBytesPerUser(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 200k users")
	}
	got := stateBytes(t, 200_000, "")
	t.Logf("%.0f bytes per active user at 200k users", got)
	if got > 512 {
		t.Fatalf("%.0f bytes per active user, target <= 512", got)
	}
}

// BenchmarkStateBytes1M measures the heap per active user at 1M users,
// with short ids (u-123456, as the simulator's) and with 36-byte ids (the
// length of a UUID):
//
//	go test ./features/window -run '^$' -bench StateBytes1M -benchtime 1x
func BenchmarkStateBytes1M(b *testing.B) {
	for _, c := range []struct{ name, prefix string }{{"ids=short", ""}, {"ids=36B", "0d5f3c1e-8a2b-4c9d-b7e6-1f"}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				b.ReportMetric(stateBytes(b, 1_000_000, c.prefix), "bytes/user")
			}
		})
	}
}

// BenchmarkHotPath is the feature stage's hot path with the engine: decode
// and validate the record (schemas.Decoder, zero copy), update the windows,
// read the vector on cart events. Baseline in the same run, in alternating
// slices of 10,000 records: encoding/json decoding the same records alone.
//
//	go test ./features/window -run '^$' -bench HotPath -benchtime 100x
func BenchmarkHotPath(b *testing.B) {
	evs := benchStream(b)
	span := evs[len(evs)-1].TimeMillis - evs[0].TimeMillis + 60_000
	records := make([][]byte, len(evs))
	topics := make([]string, len(evs))
	for i := range evs {
		records[i] = evs[i].AppendJSON(nil)
		topics[i] = schemas.TopicOf(evs[i].Type)
	}
	eng, err := window.New(window.Config{Definitions: window.PurchasePropensity()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	var dec schemas.Decoder
	var e, base schemas.Event
	vec := make([]float64, eng.Len())
	const slice = 10_000
	var hot, std time.Duration
	pos, lap := 0, int64(0)
	for range b.N {
		if pos+slice > len(records) {
			pos, lap = 0, lap+span
		}
		start := time.Now()
		for i := pos; i < pos+slice; i++ {
			if err := dec.Decode(topics[i], records[i], &e); err != nil {
				b.Fatal(err)
			}
			e.TimeMillis += lap // the next lap of the same records, later
			if err := eng.Update(&e); err != nil {
				b.Fatal(err)
			}
			if schemas.IsCartEvent(e.Type) {
				eng.Vector(&e, vec)
			}
		}
		mid := time.Now()
		for i := pos; i < pos+slice; i++ {
			base.Reset()
			if err := stdjson.Unmarshal(records[i], &base); err != nil {
				b.Fatal(err)
			}
		}
		hot, std = hot+mid.Sub(start), std+time.Since(mid)
		pos += slice
	}
	n := float64(b.N * slice)
	b.ReportMetric(n/hot.Seconds(), "hot-events/s")
	b.ReportMetric(n/std.Seconds(), "encoding/json-events/s")
	b.ReportMetric(float64(std)/float64(hot), "speedup")
}
