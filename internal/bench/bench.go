// Package bench measures the feature stage the way `driftline bench`
// reports it: the hot path on one core beside an encoding/json baseline
// taken in the same run, end-to-end throughput through the embedded broker,
// state bytes per active user, and event-to-prediction latency seen from
// outside the process (a producer and a consumer, like a storefront and a
// subscriber). Figures on shared machines are noisy: read the ratios.
package bench

import (
	"context"
	stdjson "encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features"
	"github.com/driftline/driftline/internal/demo"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// Config sizes the measurements.
type Config struct {
	// Users for the state-size measurement. Default 1,000,000.
	Users int
	// E2EEvents pre-produced to the broker for the throughput run.
	// Default 300,000.
	E2EEvents int
	// LiveRate is the events per second produced while latency is measured,
	// for LiveSeconds. Defaults 20,000 and 5.
	LiveRate    int
	LiveSeconds int
	// Brokers, when set, is a fresh broker (`driftline broker`) the
	// end-to-end and latency runs use instead of one embedded in this
	// process: its garbage collection then no longer pauses the stage. It
	// must be empty (the backlog count assumes no earlier records).
	Brokers []string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

func (c *Config) setDefaults() {
	if c.Users == 0 {
		c.Users = 1_000_000
	}
	if c.E2EEvents == 0 {
		c.E2EEvents = 300_000
	}
	if c.LiveRate == 0 {
		c.LiveRate = 20_000
	}
	if c.LiveSeconds == 0 {
		c.LiveSeconds = 5
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Report is what `driftline bench --json` prints.
type Report struct {
	HotPathEventsPerSec  float64 `json:"hot_path_events_per_sec"`
	HotPathNsPerEvent    float64 `json:"hot_path_ns_per_event"`
	AllocsPerEvent       float64 `json:"allocs_per_event"`
	BaselineEventsPerSec float64 `json:"baseline_encoding_json_events_per_sec"`
	// HotPathVsBaseline is hot path throughput over the baseline's: the
	// whole stage against decoding alone with encoding/json.
	HotPathVsBaseline      float64 `json:"hot_path_vs_baseline"`
	E2EEventsPerSec        float64 `json:"e2e_events_per_sec"`
	E2EEvents              int     `json:"e2e_events"`
	BytesPerActiveUser     float64 `json:"bytes_per_active_user"`
	ActiveUsers            int     `json:"active_users"`
	P50EventToPredictionMs float64 `json:"p50_event_to_prediction_ms"`
	P99EventToPredictionMs float64 `json:"p99_event_to_prediction_ms"`
	LatencySamples         int     `json:"latency_samples"`
	// P50FloorMs and P99FloorMs: the same live stream through an
	// exactly-once loop that does no work (floor.go), right after the
	// stage's run on the same broker: what Kafka transactions cost here.
	P50FloorMs              float64 `json:"p50_exactly_once_floor_ms"`
	P99FloorMs              float64 `json:"p99_exactly_once_floor_ms"`
	LiveEventsPerSec        int     `json:"live_events_per_sec"`
	Cores                   int     `json:"cores"`
	HotPathCores            int     `json:"hot_path_cores"`
	MeasuredWithGoVersion   string  `json:"go_version"`
	E2EIncludesGroupJoinSec float64 `json:"e2e_includes_group_join_seconds"`
	// ExternalBroker: the end-to-end and latency runs used a broker in
	// another process (Config.Brokers), not one embedded in the bench.
	ExternalBroker bool `json:"external_broker"`
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func discard([]*kgo.Record) {}

// Run takes every measurement.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.setDefaults()
	r := &Report{Cores: runtime.NumCPU(), HotPathCores: 1, MeasuredWithGoVersion: runtime.Version()}
	recs, err := simulated(2 * time.Hour)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "hot path over %d simulated records, one core...\n", len(recs))
	if err := hotPath(recs, r); err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Out, "state of %d active users...\n", cfg.Users)
	if err := stateSize(cfg.Users, r); err != nil {
		return nil, err
	}
	where := "the embedded broker"
	if len(cfg.Brokers) > 0 {
		where = fmt.Sprint(cfg.Brokers)
	}
	fmt.Fprintf(cfg.Out, "end to end through %s: %d events, then %d/s for %ds...\n", where, cfg.E2EEvents, cfg.LiveRate, cfg.LiveSeconds)
	if err := endToEnd(ctx, cfg, r); err != nil {
		return nil, err
	}
	return r, nil
}

// simulated returns a storefront stream as the stage reads it.
func simulated(d time.Duration) ([]*kgo.Record, error) {
	sim, err := storefront.New(storefront.Config{Seed: 1})
	if err != nil {
		return nil, err
	}
	var recs []*kgo.Record
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) {
		recs = append(recs, &kgo.Record{Topic: schemas.TopicOf(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil), Timestamp: time.Now()})
	})
	return recs, nil
}

func newStage() (*features.Processor, error) {
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	p, err := features.New(features.Config{}, kcfg, consumers.NewModelFeed(kcfg, quiet), quiet, prometheus.NewRegistry())
	if err != nil {
		return nil, err
	}
	return p, p.Serve(benchModel())
}

// benchModel is a champion of the right shape; its weights do not change
// the cost of scoring.
func benchModel() *schemas.ModelVersion {
	spec := features.PurchasePropensity()
	n := len(spec.Features)
	std := make([]float64, n)
	for i := range std {
		std[i] = 1
	}
	return &schemas.ModelVersion{Model: spec.Name, Version: 1, Features: spec.Features,
		Weights: make([]float64, n), Mean: make([]float64, n), Std: std}
}

func hotPath(recs []*kgo.Record, r *Report) error {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var stageErr error
	stage := testing.Benchmark(func(b *testing.B) {
		p, err := newStage()
		if err != nil {
			stageErr = err
			return
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if i%len(recs) == 0 && i > 0 {
				b.StopTimer()
				if p, err = newStage(); err != nil { // replay the stream from a clean state
					stageErr = err
					return
				}
				b.StartTimer()
			}
			p.Process(recs[i%len(recs)])
			if i%1024 == 0 {
				// A batch boundary: Run produces the records, ends the
				// transaction, then reuses their buffers.
				p.FlushOutputs(discard)
			}
		}
	})
	if stageErr != nil {
		return stageErr
	}
	base := testing.Benchmark(func(b *testing.B) {
		var e schemas.Event
		b.ReportAllocs()
		for i := range b.N {
			e.Reset()
			_ = stdjson.Unmarshal(recs[i%len(recs)].Value, &e)
		}
	})
	r.HotPathNsPerEvent = float64(stage.NsPerOp())
	r.HotPathEventsPerSec = round(1e9 / r.HotPathNsPerEvent)
	r.AllocsPerEvent = float64(stage.AllocsPerOp())
	r.BaselineEventsPerSec = round(1e9 / float64(base.NsPerOp()))
	r.HotPathVsBaseline = round2(r.HotPathEventsPerSec / r.BaselineEventsPerSec)
	return nil
}

// stateSize loads n users, each with a session holding a viewed product and
// a cart event awaiting its label, and divides the heap they hold by n. The
// users are spread over statePartitions partitions as the storefront's
// keying spreads them, each partition with the stage's default key budget;
// an event the stage rejects (a budget too small for the users) fails the
// measurement instead of leaving users out of the state it divides by.
func stateSize(n int, r *Report) error {
	p, err := newStage()
	if err != nil {
		return err
	}
	ts := "2026-11-23T10:00:00Z"
	var heapBefore runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapBefore)
	buf := make([]byte, 0, 512)
	rejected := 0
	count := func(recs []*kgo.Record) {
		for _, rec := range recs {
			if rec.Topic == consumers.DefaultTopics().DLQ {
				rejected++
			}
		}
	}
	// The ids are views of one reused buffer and the record is reused:
	// garbage of the measurement's own (an id string per user) would share
	// the allocator's 16-byte tiny blocks with the stage's key copies and
	// keep blocks alive that the stage alone would pack (8 bytes per user).
	ids := make([]byte, 0, 64)
	view := func(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
	rec := &kgo.Record{}
	var e schemas.Event
	for u := range n {
		for _, typ := range [...]string{schemas.ProductView, schemas.AddToCart} {
			ids = strconv.AppendInt(append(ids[:0], "u-"...), int64(u), 10)
			nu := len(ids)
			ids = append(append(ids, "s-"...), ids[:nu]...)
			ns := len(ids)
			ids = append(append(append(ids, ids[:nu]...), '-'), typ...)
			e = schemas.NewEvent()
			e.EventID, e.Type, e.TS, e.UserID, e.SessionID = view(ids[ns:]), typ, ts, view(ids[:nu]), view(ids[nu:ns])
			e.Device, e.Country, e.Referrer, e.ProductID, e.Price = "mobile", "DE", "search", "p-1", 20
			if typ == schemas.AddToCart {
				e.Quantity = 1
			}
			buf = e.AppendJSON(buf[:0])
			*rec = kgo.Record{Topic: schemas.TopicOf(typ), Partition: int32(u % statePartitions), Key: ids[:nu], Value: buf}
			p.Process(rec)
		}
		if u%4096 == 0 {
			p.FlushOutputs(count)
		}
	}
	p.FlushOutputs(count)
	var heapAfter runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&heapAfter)
	runtime.KeepAlive(p)
	if rejected > 0 {
		return fmt.Errorf("state size: the stage rejected %d of %d events (key budget per partition too small for %d users over %d partitions)", rejected, 2*n, n, statePartitions)
	}
	r.ActiveUsers = n
	r.BytesPerActiveUser = round(float64(heapAfter.HeapAlloc-heapBefore.HeapAlloc) / float64(n))
	return nil
}

// statePartitions is the partition count the state-size run spreads its
// users over: the embedded broker's default.
const statePartitions = 8

func endToEnd(ctx context.Context, cfg Config, r *Report) error {
	brokers := cfg.Brokers
	if len(brokers) == 0 {
		broker, err := consumers.NewBroker(consumers.BrokerConfig{}, quiet)
		if err != nil {
			return err
		}
		defer broker.Close()
		brokers = []string{broker.Addr()}
	}
	r.ExternalBroker = len(cfg.Brokers) > 0
	kcfg := consumers.KafkaConfig{Brokers: brokers}
	kcfg.SetDefaults()
	if err := consumers.ProvisionTopics(ctx, kcfg, quiet); err != nil {
		return err
	}
	prodCl, err := kgo.NewClient(kcfg.Opts(quiet, kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(100_000))...)
	if err != nil {
		return err
	}
	defer prodCl.Close()
	sim, err := storefront.New(storefront.Config{Seed: 2, SessionsPerMinute: 600})
	if err != nil {
		return err
	}
	prod := demo.NewProducer(prodCl, kcfg.Topics, demo.Pace{})
	for n, _ := prod.Produced(); n < cfg.E2EEvents; n, _ = prod.Produced() {
		if err := prod.Advance(ctx, sim, sim.Now().Add(time.Minute)); err != nil {
			return err
		}
	}
	if err := prodCl.Flush(ctx); err != nil {
		return err
	}
	backlog, _ := prod.Produced()
	r.E2EEvents = backlog

	// A champion, so every cart event is scored.
	b, _ := json.Marshal(schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: benchModel()})
	a, _ := json.Marshal(schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: benchModel().Model, Alias: schemas.AliasChampion, Version: 1}})
	if err := prodCl.ProduceSync(ctx, &kgo.Record{Topic: kcfg.Topics.Models, Value: b}, &kgo.Record{Topic: kcfg.Topics.Models, Value: a}).FirstErr(); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	feed := consumers.NewModelFeed(kcfg, quiet)
	p, err := features.New(features.Config{}, kcfg, feed, quiet, reg)
	if err != nil {
		return err
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = feed.Run(rctx) }()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	firstAt := time.Time{}
	for {
		n := counter(reg, "driftline_features_events_total")
		if n > 0 && firstAt.IsZero() {
			firstAt = time.Now()
		}
		if n >= float64(backlog) {
			break
		}
		select {
		case err := <-done:
			return fmt.Errorf("feature stage stopped during the benchmark: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	r.E2EEventsPerSec = round(float64(backlog) / elapsed.Seconds())
	r.E2EIncludesGroupJoinSec = round2(firstAt.Sub(start).Seconds())

	lat, err := liveLatency(ctx, cfg, kcfg, prodCl, sim)
	if err != nil {
		return err
	}
	slices.Sort(lat)
	r.LatencySamples = len(lat)
	r.LiveEventsPerSec = cfg.LiveRate
	if len(lat) > 0 {
		r.P50EventToPredictionMs = round2(lat[len(lat)/2])
		r.P99EventToPredictionMs = round2(lat[min(len(lat)-1, int(math.Ceil(0.99*float64(len(lat))))-1)])
	}
	stop()
	if err := <-done; err != nil {
		return err
	}

	floor, err := floorLatency(ctx, cfg, kcfg, prodCl, sim)
	if err != nil {
		return fmt.Errorf("exactly-once floor: %w", err)
	}
	slices.Sort(floor)
	if len(floor) > 0 {
		r.P50FloorMs = round2(floor[len(floor)/2])
		r.P99FloorMs = round2(floor[min(len(floor)-1, int(math.Ceil(0.99*float64(len(floor))))-1)])
	}
	return nil
}

// liveLatency produces at a steady rate and measures, for every cart event,
// the wall time from just before it was handed to the producer to the
// moment its prediction was read back from the predictions topic.
func liveLatency(ctx context.Context, cfg Config, kcfg consumers.KafkaConfig, prodCl *kgo.Client, sim *storefront.Simulator) ([]float64, error) {
	cons, err := kgo.NewClient(kcfg.Opts(quiet,
		kgo.ConsumeTopics(kcfg.Topics.Predictions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(10*time.Millisecond),
	)...)
	if err != nil {
		return nil, err
	}
	defer cons.Close()
	cons.PollFetches(ctxTimeout(ctx, 200*time.Millisecond)) // join at the end before producing

	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []float64
	stopRead := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			select {
			case <-stopRead:
				return
			default:
			}
			fs := cons.PollFetches(ctxTimeout(ctx, 100*time.Millisecond))
			now := time.Now()
			fs.EachRecord(func(rec *kgo.Record) {
				var pr struct {
					EventID string `json:"event_id"`
				}
				if json.Unmarshal(rec.Value, &pr) != nil {
					return
				}
				mu.Lock()
				if t, ok := sent[pr.EventID]; ok {
					lat = append(lat, float64(now.Sub(t).Microseconds())/1000)
					delete(sent, pr.EventID)
				}
				mu.Unlock()
			})
		}
	}()

	total := cfg.LiveRate * cfg.LiveSeconds
	start := time.Now()
	for produced := 0; produced < total; {
		sim.Advance(sim.Now().Add(time.Second), func(e *schemas.Event) {
			v := e.AppendJSON(make([]byte, 0, 384))
			if schemas.IsCartEvent(e.Type) {
				mu.Lock()
				sent[e.EventID] = time.Now()
				mu.Unlock()
			}
			prodCl.Produce(ctx, &kgo.Record{Topic: kcfg.Topics.ForType(e.Type), Key: []byte(e.UserID), Value: v}, nil)
			produced++
		})
		// Hold the rate: sleep until this many events are due.
		if d := time.Until(start.Add(time.Duration(produced) * time.Second / time.Duration(cfg.LiveRate))); d > 0 {
			time.Sleep(d)
		}
	}
	_ = prodCl.Flush(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		left := len(sent)
		mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stopRead)
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	if len(sent) > 0 {
		return nil, fmt.Errorf("%d cart events produced during the latency run got no prediction within 10s", len(sent))
	}
	return lat, nil
}

func ctxTimeout(ctx context.Context, d time.Duration) context.Context {
	c, cancel := context.WithTimeout(ctx, d)
	time.AfterFunc(d, cancel)
	return c
}

func counter(reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func round(v float64) float64  { return math.Round(v) }
func round2(v float64) float64 { return math.Round(v*100) / 100 }
