package window

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

var update = flag.Bool("update", false, "regenerate testdata/features with golden.py (python3)")

const goldenDir = "../../testdata/features"

// goldenEvent is one line of events.jsonl.
type goldenEvent struct {
	EventID   string   `json:"event_id"`
	Type      string   `json:"type"`
	TSMillis  int64    `json:"ts_ms"`
	UserID    string   `json:"user_id"`
	SessionID string   `json:"session_id"`
	Device    string   `json:"device"`
	Referrer  string   `json:"referrer"`
	Country   string   `json:"country"`
	ProductID string   `json:"product_id"`
	Category  string   `json:"category"`
	Query     string   `json:"query"`
	Price     *float64 `json:"price"`
	Quantity  *int     `json:"quantity"`
	CartValue *float64 `json:"cart_value"`
	Items     *int     `json:"items"`
	OrderID   string   `json:"order_id"`
	Amount    *float64 `json:"amount"`
	Currency  string   `json:"currency"`
}

func (g *goldenEvent) event() schemas.Event {
	e := schemas.NewEvent()
	e.EventID, e.Type, e.TimeMillis = g.EventID, g.Type, g.TSMillis
	e.TS = time.UnixMilli(g.TSMillis).UTC().Format(time.RFC3339Nano)
	e.UserID, e.SessionID, e.Device, e.Referrer, e.Country = g.UserID, g.SessionID, g.Device, g.Referrer, g.Country
	e.ProductID, e.Category, e.Query, e.OrderID, e.Currency = g.ProductID, g.Category, g.Query, g.OrderID, g.Currency
	if g.Price != nil {
		e.Price = *g.Price
	}
	if g.Quantity != nil {
		e.Quantity = *g.Quantity
	}
	if g.CartValue != nil {
		e.CartValue = *g.CartValue
	}
	if g.Items != nil {
		e.Items = *g.Items
	}
	if g.Amount != nil {
		e.Amount = *g.Amount
	}
	return e
}

type goldenExpected struct {
	EventID string    `json:"event_id"`
	Late    bool      `json:"late"`
	Vector  []float64 `json:"vector"`
}

type goldenWindow struct {
	Feature string  `json:"feature"`
	Key     string  `json:"key"`
	Start   int64   `json:"start"`
	End     int64   `json:"end"`
	Events  int     `json:"events"`
	Value   float64 `json:"value"`
}

func readJSONL[T any](t *testing.T, name string) []T {
	t.Helper()
	f, err := os.Open(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var v T
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func loadGolden(t *testing.T) (*Definitions, []schemas.Event, []goldenExpected, []goldenWindow) {
	t.Helper()
	if *update {
		cmd := exec.Command("python3", filepath.Join(goldenDir, "golden.py"), goldenDir)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("golden.py: %v", err)
		}
	}
	defs, err := Load(filepath.Join(goldenDir, "defs.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var evs []schemas.Event
	for _, g := range readJSONL[goldenEvent](t, "events.jsonl") {
		evs = append(evs, g.event())
	}
	return defs, evs, readJSONL[goldenExpected](t, "expected.jsonl"), readJSONL[goldenWindow](t, "windows.jsonl")
}

func close9(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

// goldenConfig is the engine configuration golden.py assumes: 60 s of
// lateness, nothing expires while the stream runs.
func goldenConfig(defs *Definitions) Config {
	return Config{Definitions: defs, AllowedLateness: time.Minute, UserTTL: 1000 * time.Hour, SessionTTL: 1000 * time.Hour}
}

// TestGolden feeds the shuffled, delayed stream of testdata/features through
// the engine and compares every vector, every late verdict and every window
// result with golden.py's brute-force recomputation, to 1e-9.
func TestGolden(t *testing.T) {
	defs, evs, want, wantWindows := loadGolden(t)
	if len(want) != len(evs) {
		t.Fatalf("expected.jsonl has %d lines for %d events", len(want), len(evs))
	}
	e, err := New(goldenConfig(defs), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []goldenWindow
	prevWM := e.Watermark()
	e.OnClose(func(r Result) {
		// Emitted by the very watermark move that passed its end.
		if r.End > e.Watermark() || r.End <= prevWM {
			t.Errorf("window %s %s [%d, %d) emitted when the watermark moved from %d to %d", r.Name, r.Key, r.Start, r.End, prevWM, e.Watermark())
		}
		got = append(got, goldenWindow{Feature: r.Name, Key: r.Key, Start: r.Start, End: r.End, Events: r.Events, Value: r.Value})
	})
	vec := make([]float64, e.Len())
	late := 0
	for i := range evs {
		ev := &evs[i]
		prevWM = e.Watermark()
		err := e.Update(ev)
		if want[i].Late {
			late++
			if !errors.Is(err, ErrLate) {
				t.Fatalf("event %s (%d): want ErrLate, got %v", ev.EventID, i, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("event %s (%d): %v", ev.EventID, i, err)
		}
		e.Vector(ev, vec)
		for j, w := range want[i].Vector {
			if !close9(vec[j], w) {
				t.Fatalf("event %s (%d, %s at %d): %s = %v, want %v", ev.EventID, i, ev.Type, ev.TimeMillis, defs.Features[j].Name, vec[j], w)
			}
		}
	}
	if late == 0 || late == len(evs) {
		t.Fatalf("golden stream has %d late events of %d: it must test both", late, len(evs))
	}
	if s := e.Stats(); s.Late != int64(late) || s.Overflowed != 0 || s.Evicted != 0 {
		t.Fatalf("stats %+v, want %d late, no overflow, no eviction", s, late)
	}
	prevWM = e.Watermark()
	e.Advance(math.MaxInt64)
	sortWindows(got)
	if len(got) != len(wantWindows) {
		t.Fatalf("%d windows emitted, want %d (first: %+v)", len(got), len(wantWindows), firstDiff(got, wantWindows))
	}
	for i := range got {
		g, w := got[i], wantWindows[i]
		if g.Feature != w.Feature || g.Key != w.Key || g.Start != w.Start || g.End != w.End || g.Events != w.Events || !close9(g.Value, w.Value) {
			t.Fatalf("window %d: got %+v, want %+v", i, g, w)
		}
	}
	// Every feature kind was exercised.
	kinds := map[string]bool{}
	for _, f := range defs.Features {
		kinds[f.Aggregation] = true
		kinds["window:"+f.Window.Kind] = true
	}
	for _, k := range append(slices.Clone(aggregationNames[:]), "window:tumbling", "window:hopping", "window:session", "window:event", "window:") {
		if !kinds[k] {
			t.Errorf("golden definitions do not cover %s", k)
		}
	}
}

func sortWindows(ws []goldenWindow) {
	slices.SortFunc(ws, func(a, b goldenWindow) int {
		if a.Feature != b.Feature {
			return cmpStr(a.Feature, b.Feature)
		}
		if a.Key != b.Key {
			return cmpStr(a.Key, b.Key)
		}
		return int(a.Start - b.Start)
	})
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func firstDiff(got, want []goldenWindow) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] && !(got[i].Feature == want[i].Feature && got[i].Key == want[i].Key && got[i].Start == want[i].Start && close9(got[i].Value, want[i].Value) && got[i].Events == want[i].Events && got[i].End == want[i].End) {
			return fmt.Sprintf("index %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	return "a tail differs"
}
