package features

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/schematest"
	"github.com/driftline/driftline/schemas"
)

// The window engine's golden data (features/window TestGolden): a shuffled
// and delayed stream of 528 events over 28 features (tumbling, hopping and
// session windows among them) and the windows golden.py computes by brute
// force from the accepted events.
const goldenDir = "../testdata/features"

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

func (g *goldenEvent) event() *schemas.Event {
	e := new(schemas.Event)
	*e = schemas.NewEvent()
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

// goldenWindow is a line of windows.jsonl, and what a published record is
// compared by.
type goldenWindow struct {
	Feature string  `json:"feature"`
	Key     string  `json:"key"`
	Start   int64   `json:"start"`
	End     int64   `json:"end"`
	Events  int     `json:"events"`
	Value   float64 `json:"value"`
}

func readGolden[T any](t *testing.T, name string) []T {
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

func sortWindows(ws []goldenWindow) {
	slices.SortFunc(ws, func(a, b goldenWindow) int {
		return cmpOr(strings.Compare(a.Feature, b.Feature), strings.Compare(a.Key, b.Key), int(a.Start-b.Start), int(a.End-b.End))
	})
}

func cmpOr(cs ...int) int {
	for _, c := range cs {
		if c != 0 {
			return c
		}
	}
	return 0
}

// goldenSpec serves a model over the golden definitions (its features are
// incidental: the windows are what is checked).
func goldenConfig() Config {
	return Config{
		FeaturesFile: filepath.Join(goldenDir, "defs.yaml"),
		Spec:         Spec{Name: "golden_model", Triggers: []string{schemas.AddToCart}, Horizon: 30 * time.Minute, Features: []string{"u_count_life", "u_price_max_tumble"}},
		// golden.py's engine: nothing expires while the stream runs.
		UserTTL: 1000 * time.Hour, SessionTTL: 1000 * time.Hour,
	}
}

// leapingClock makes every input topic idle at every event (each call is a
// minute of wall time later): the stage's watermark is then the newest
// event time of the partition minus the lateness, the engine's own rule that
// golden.py applies, so the golden late verdicts and windows hold.
func leapingClock() func() time.Time {
	var n atomic.Int64
	base := time.Now()
	return func() time.Time { return base.Add(time.Duration(n.Add(1)) * time.Minute) }
}

// TestWindowResultsArePublishedExactlyOnce runs the golden stream through
// the stage on kfake, in chunks (each one transaction of a producer, so the
// stage reads a chunk in file order), with the stage's fourth transaction
// aborted after it produced its records (its offset commit fails). A
// read_committed reader of driftline.windows then sees every window
// golden.py expects exactly once, with its value, and nothing else; a
// read_uncommitted reader sees the aborted transaction's copies too, so the
// windows closed in it were closed again by the replay after the restore,
// not lost and not doubled.
func TestWindowResultsArePublishedExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the stage on kfake")
	}
	gevs := readGolden[goldenEvent](t, "events.jsonl")
	want := readGolden[goldenWindow](t, "windows.jsonl")
	late := 0
	for _, x := range readGolden[struct {
		Late bool `json:"late"`
	}](t, "expected.jsonl") {
		if x.Late {
			late++
		}
	}
	sortWindows(want)
	// A session's segments are those of its first event the stage took.
	sessionSegments := map[string]schemas.Segments{}
	for i, x := range readGolden[struct {
		Late bool `json:"late"`
	}](t, "expected.jsonl") {
		e := gevs[i]
		if _, ok := sessionSegments[e.SessionID]; !ok && !x.Late {
			sessionSegments[e.SessionID] = schemas.Segments{Device: e.Device, Country: e.Country, Referrer: e.Referrer}
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	kcfg := consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 1}
	kcfg.SetDefaults()
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}

	// The stage's fourth offset commit fails with an error that makes the
	// session abort the transaction.
	var commits atomic.Int32
	cluster.ControlKey(int16(kmsg.TxnOffsetCommit), func(req kmsg.Request) (kmsg.Response, error, bool) {
		if commits.Add(1) != 4 {
			return nil, nil, false
		}
		r := req.(*kmsg.TxnOffsetCommitRequest)
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		resp.SetVersion(r.GetVersion())
		for _, rt := range r.Topics {
			st := kmsg.NewTxnOffsetCommitResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, kerr.UnknownServerError.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	reg := prometheus.NewRegistry()
	feed := consumers.NewModelFeed(kcfg, log)
	cfg := goldenConfig()
	cfg.TransactionalID, cfg.SessionTimeout, cfg.MaxBatchRecords = "windows-test", 6*time.Second, 1000
	p, err := New(cfg, kcfg, feed, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	p.now = leapingClock()
	go func() { _ = feed.Run(ctx) }()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(sctx) }()

	prod, err := kgo.NewClient(kcfg.Opts(log, kgo.TransactionalID("windows-test-producer"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// next is, per input topic, the offset after its last record produced:
	// the stage has committed a chunk when its group offsets reach them
	// (its event counters also count replayed inputs).
	next := map[string]int64{}
	adm := kadm.NewClient(prod)
	caughtUp := func() bool {
		offs, err := adm.FetchOffsets(ctx, p.cfg.Group)
		if err != nil {
			return false
		}
		for topic, n := range next {
			o, ok := offs.Lookup(topic, 0)
			if !ok || o.At < n {
				return false
			}
		}
		return true
	}
	// A final event a day later, of a user of its own, closes every golden
	// window (its own windows stay open).
	last := slices.MaxFunc(gevs, func(a, b goldenEvent) int { return int(a.TSMillis - b.TSMillis) })
	gevs = append(gevs, goldenEvent{EventID: "flush", Type: schemas.PageView, TSMillis: last.TSMillis + 24*3600_000, UserID: "flush-user", SessionID: "flush-session"})
	t0 := time.Now()
	const chunk = 40
	for start := 0; start < len(gevs); start += chunk {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := start; i < min(start+chunk, len(gevs)); i++ {
			e := gevs[i].event()
			rec := &kgo.Record{Topic: kcfg.Topics.ForType(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil),
				Timestamp: t0.Add(time.Duration(i) * time.Millisecond)}
			if err := prod.ProduceSync(ctx, rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
			next[rec.Topic] = rec.Offset + 1
		}
		if err := prod.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
		// The next chunk only once this one is committed: a poll then
		// holds one chunk, merged back into file order by record timestamp.
		checkfor.Until(t, time.Minute, "the stage to commit chunk "+strconv.Itoa(start/chunk), func() bool {
			select {
			case err := <-done:
				t.Fatalf("stage stopped: %v", err)
			default:
			}
			return caughtUp()
		})
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(p.m.txns.WithLabelValues("aborted")); got != 1 {
		t.Fatalf("%v aborted transactions, want the 1 the broker forced", got)
	}
	// The late verdicts are golden.py's; the counters count what committed
	// transactions did, not the aborted one's inputs, which were handled
	// again.
	lateDLQ := 0
	for _, r := range readTopic(t, ctx, kcfg, kcfg.Topics.DLQ, kgo.ReadCommitted()) {
		if strings.HasPrefix(consumers.Header(r, schemas.HeaderReason), "late") {
			lateDLQ++
		}
	}
	if lateDLQ != late {
		t.Errorf("%d late events dead-lettered, want golden.py's %d: the stage's watermark is not the golden one", lateDLQ, late)
	}
	if got := testutil.ToFloat64(p.m.late); got != float64(late) {
		t.Errorf("driftline_features_late_total = %v, want %d: an aborted transaction's inputs counted twice", got, late)
	}
	events := 0.0
	for _, topic := range kcfg.Topics.Inputs() {
		events += testutil.ToFloat64(p.m.events.WithLabelValues(topic))
	}
	if events != float64(len(gevs)) {
		t.Errorf("driftline_features_events_total sums to %v, want the %d events produced, each counted once", events, len(gevs))
	}

	committed := readTopic(t, ctx, kcfg, kcfg.Topics.Windows, kgo.ReadCommitted())
	all := readTopic(t, ctx, kcfg, kcfg.Topics.Windows, kgo.ReadUncommitted())
	if len(all) <= len(committed) {
		t.Fatalf("read_uncommitted sees %d window records, read_committed %d: the aborted transaction closed no window, the test proves nothing", len(all), len(committed))
	}
	sch := schematest.Compile(t, schemas.TopicWindows)
	defs, err := window.Load(cfg.FeaturesFile)
	if err != nil {
		t.Fatal(err)
	}
	kindOf := map[string]string{}
	withSegments := 0
	var got []goldenWindow
	for _, r := range committed {
		var w schemas.WindowResult
		if err := json.Unmarshal(r.Value, &w); err != nil {
			t.Fatalf("window record %s: %v", r.Value, err)
		}
		if inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(r.Value)); err != nil || sch.Validate(inst) != nil {
			t.Fatalf("window record %s does not match its JSON Schema: %v", r.Value, sch.Validate(inst))
		}
		if k := string(schemas.AppendWindowKey(nil, &w)); string(r.Key) != k {
			t.Fatalf("record key %q, want %q", r.Key, k)
		}
		if w.Definitions != "golden" || w.Model != "golden_model" || w.InputPartition != 0 || w.Watermark.Before(w.Window.To) ||
			!r.Timestamp.Equal(w.Window.To) || !slices.Contains([]string{"user", "session"}, w.Entity) {
			t.Fatalf("window record %s (timestamp %s): wrong identity, watermark or timestamp", r.Value, r.Timestamp)
		}
		f := defs.Features[max(0, defs.Index(w.Feature))]
		if f.Name != w.Feature || w.Kind != f.Window.Kind || w.Aggregation != f.Aggregation {
			t.Fatalf("window record %s: the definition of %s says kind %s, aggregation %s", r.Value, f.Name, f.Window.Kind, f.Aggregation)
		}
		if want := sessionSegments[w.Key]; w.Entity == "session" && w.Segments != want || w.Entity == "user" && w.Segments != (schemas.Segments{}) {
			t.Fatalf("window record %s: segments %+v, want %+v (a session's first event's; none for a user)", r.Value, w.Segments, want)
		}
		if w.Entity == "session" && w.Segments.Device != "" {
			withSegments++
		}
		kindOf[w.Feature] = w.Kind
		got = append(got, goldenWindow{Feature: w.Feature, Key: w.Key, Start: w.Window.From.UnixMilli(), End: w.Window.To.UnixMilli(), Events: w.Events, Value: w.Value})
	}
	sortWindows(got)
	if len(got) != len(want) {
		t.Fatalf("%d windows published, golden.py expects %d; %s", len(got), len(want), windowDiff(got, want))
	}
	kinds := map[string]bool{}
	for i := range got {
		g, w := got[i], want[i]
		if g.Feature != w.Feature || g.Key != w.Key || g.Start != w.Start || g.End != w.End || g.Events != w.Events ||
			math.Abs(g.Value-w.Value) > 1e-9*math.Max(1, math.Abs(w.Value)) {
			t.Fatalf("window %d: published %+v, golden %+v", i, g, w)
		}
		kinds[kindOf[g.Feature]] = true
	}
	if withSegments == 0 {
		t.Error("no session window carried segments: the check above proves nothing")
	}
	if !kinds[schemas.WindowTumbling] || !kinds[schemas.WindowHopping] || !kinds[schemas.WindowSession] {
		t.Errorf("published window kinds %v: want tumbling, hopping and session", kinds)
	}
	// The window engine's counters, like the stage's, count what committed.
	for name, want := range map[string]int{"driftline_window_late_events_total": late, "driftline_window_results_total": len(got)} {
		if v := gathered(t, reg, name); v != float64(want) {
			t.Errorf("%s = %v, want %d: the aborted transaction's replay counted twice", name, v, want)
		}
	}
	t.Logf("%d windows published once each; the aborted transaction held %d copies that read_committed does not see", len(got), len(all)-len(committed))
}

// gathered is the sum of a metric's series in reg.
func gathered(t *testing.T, reg prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			found = true
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	if !found {
		t.Fatalf("no metric %s registered", name)
	}
	return sum
}

// readTopic reads every data record of a one-partition topic up to its end.
func readTopic(t *testing.T, ctx context.Context, kcfg consumers.KafkaConfig, topic string, iso kgo.IsolationLevel) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(iso),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, _ := ends.Lookup(topic, 0)
	var out []*kgo.Record
	for next := int64(0); next < end.Offset; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v at offset %d of %d", topic, err, next, end.Offset)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

// windowDiff names the first windows only one side has.
func windowDiff(got, want []goldenWindow) string {
	id := func(w goldenWindow) string {
		return w.Feature + "/" + w.Key + "/" + strconv.FormatInt(w.Start, 10) + "/" + strconv.FormatInt(w.End, 10)
	}
	g, w := map[string]bool{}, map[string]bool{}
	for _, x := range got {
		g[id(x)] = true
	}
	for _, x := range want {
		w[id(x)] = true
	}
	var missing, extra []string
	for _, x := range want {
		if !g[id(x)] && len(missing) < 5 {
			missing = append(missing, id(x))
		}
	}
	for _, x := range got {
		if !w[id(x)] && len(extra) < 5 {
			extra = append(extra, id(x))
		}
	}
	return fmt.Sprintf("missing %v, not expected %v", missing, extra)
}

// TestWindowResultsAllocateNothingPerEvent is TestHandleAllocatesNothingPerEvent
// with tumbling, hopping and session windows that close all the time: the
// results are encoded into the batch's buffer like every other output.
func TestWindowResultsAllocateNothingPerEvent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "windowed.yaml")
	defs := `name: windowed
features:
  - name: views_1m
    entity: user
    events: [product_view]
    aggregation: count
    window: {kind: tumbling, size: 1m}
  - name: price_max_5m
    entity: user
    events: [product_view, add_to_cart]
    value: price
    aggregation: max
    window: {kind: hopping, size: 5m, hop: 1m}
  - name: session_carts
    entity: session
    events: [add_to_cart]
    aggregation: count
    window: {kind: session, gap: 30s}
`
	if err := os.WriteFile(path, []byte(defs), 0o600); err != nil {
		t.Fatal(err)
	}
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	spec := Spec{Name: "windowed", Triggers: []string{schemas.AddToCart}, Horizon: 30 * time.Minute, Features: []string{"views_1m", "price_max_5m", "session_carts"}}
	p, err := New(Config{FeaturesFile: path, Spec: spec}, kcfg, consumers.NewModelFeed(kcfg, log), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.scorer.Swap(&schemas.ModelVersion{Model: spec.Name, Version: 1, Features: spec.Features,
		Weights: make([]float64, 3), Mean: make([]float64, 3), Std: []float64{1, 1, 1}}); err != nil {
		t.Fatal(err)
	}
	const users, warm, measured = 49, 20_000, 10_000
	recs := steadyStream(users, warm+measured+1)
	i, windows := 0, 0
	step := func() {
		p.handle(recs[i])
		i++
		if i%256 == 0 {
			p.FlushOutputs(func(out []*kgo.Record) {
				for _, r := range out {
					if r.Topic == schemas.TopicWindows {
						windows++
					}
				}
			})
		}
	}
	for range warm {
		step()
	}
	before := windows
	if allocs := testing.AllocsPerRun(measured, step); allocs != 0 {
		t.Errorf("hot path with window results allocates %.2f times per event, want 0", allocs)
	}
	if n := windows - before; n < measured/10 {
		t.Errorf("%d window results while measuring %d events: the test measures nothing", n, measured)
	}
	t.Logf("%d window results while measuring %d events", windows-before, measured)
}
