package monitors

import (
	stdjson "encoding/json"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// benchFeatures is the purchase-propensity model's width.
const benchFeatures = 15

func benchData(b *testing.B) (schemas.Profile, [][]float64) {
	rng := rand.New(rand.NewPCG(51, 52))
	row := func() []float64 {
		x := make([]float64, benchFeatures)
		for f := range x {
			switch {
			case f%5 == 0:
				x[f] = float64(rng.IntN(2)) // indicators: categorical
			case f%5 == 1:
				x[f] = float64(rng.IntN(20)) // counts
			default:
				x[f] = 40 * rng.ExpFloat64() // prices, values, minutes
			}
		}
		return x
	}
	ref := make([][]float64, 20000)
	for i := range ref {
		ref[i] = row()
	}
	names := make([]string, benchFeatures)
	for f := range names {
		names[f] = string(rune('a' + f))
	}
	cur := make([][]float64, 4096)
	for i := range cur {
		cur[i] = row()
	}
	return schemas.Profile{Rows: len(ref), Features: profile.Build(names, ref, 10)}, cur
}

// BenchmarkMonitorUpdate is the online drift monitor's cost per feature
// vector: the vector enters the 2000-vector window (one leaves), and every
// 250th vector every column is evaluated (PSI plus its default method:
// Wasserstein or Jensen–Shannon here), as the Monitor does. ns/feature is
// the cost per event per feature. Compare with the baselines below, run in
// the same invocation:
//
//	go test ./monitors -run '^$' -bench 'MonitorUpdate|BaselineDecode|BaselineRecompute' -benchmem
func BenchmarkMonitorUpdate(b *testing.B) {
	ref, cur := benchData(b)
	w, err := newDriftWindow(ref, 2000, nil, (&Config{}).defaultThresholds())
	if err != nil {
		b.Fatal(err)
	}
	for i := range 2000 {
		_ = w.add(cur[i%len(cur)], t0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	var sink float64
	for i := range b.N {
		_ = w.add(cur[i%len(cur)], t0)
		if w.added%250 == 0 {
			for f := range w.cols {
				sink += w.evaluate(f).value
			}
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFeatures, "ns/feature")
	_ = sink
}

// BenchmarkBaselineDecode is what the Monitor pays anyway per vector:
// encoding/json decoding the feature-vector record it arrives in.
func BenchmarkBaselineDecode(b *testing.B) {
	_, cur := benchData(b)
	rec, _ := stdjson.Marshal(schemas.FeatureVector{Model: "purchase_propensity", EventID: "e1", EventType: "add_to_cart",
		EventTime: time.Now(), UserID: "u1", SessionID: "s1", Values: cur[0]})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for range b.N {
		var v schemas.FeatureVector
		if err := stdjson.Unmarshal(rec, &v); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFeatures, "ns/feature")
}

// BenchmarkBaselineRecompute is the naive online monitor: keep the raw
// reference sample and the window, and recompute the same statistics from
// the raw samples (normalised Wasserstein by sorting) every 250 vectors.
func BenchmarkBaselineRecompute(b *testing.B) {
	rng := rand.New(rand.NewPCG(53, 54))
	refCol := make([][]float64, benchFeatures)
	for f := range refCol {
		refCol[f] = make([]float64, 20000)
		for i := range refCol[f] {
			refCol[f][i] = 40 * rng.ExpFloat64()
		}
	}
	_, cur := benchData(b)
	win := make([][]float64, benchFeatures)
	for f := range win {
		win[f] = make([]float64, 2000)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	var sink float64
	for i := range b.N {
		for f, v := range cur[i%len(cur)] {
			win[f][i%2000] = v
		}
		if (i+1)%250 == 0 {
			for f := range win {
				sink += NormalizedWasserstein(refCol[f], win[f])
			}
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFeatures, "ns/feature")
	_ = sink
}

// BenchmarkMonitorUpdateSegments is BenchmarkMonitorUpdate through the
// Monitor with its default segments (device, country, referrer): every
// vector also enters one window per dimension, each evaluated (and judged)
// every 250 of its vectors. Decoding is left out, as in the bare window
// benchmark.
func BenchmarkMonitorUpdateSegments(b *testing.B) {
	ref, cur := benchData(b)
	w := newWatched(b, Config{}, nil)
	names := make([]string, benchFeatures)
	for i, f := range ref.Features {
		names[i] = f.Name
	}
	// Reports are encoded and handed to a publisher that drops them: the
	// transport (one produce per poll in the pipeline) is not the
	// monitor's cost, and the test GoChannel would keep every message.
	w.mo.pub = discard{}
	w.mo.champ = nil
	w.mo.install(&schemas.ModelVersion{Model: w.mo.cfg.Model, Version: 9, Features: names, Reference: ref, Metrics: schemas.ModelMetrics{AUC: 0.8}})
	devices, countries, refs := []string{"mobile", "desktop", "tablet"}, []string{"DE", "FR", "US", "GB"}, []string{"direct", "search", "social"}
	vecs := make([]schemas.FeatureVector, len(cur))
	for i := range vecs {
		vecs[i] = schemas.FeatureVector{Model: w.mo.cfg.Model, EventTime: t0.Add(time.Duration(i) * time.Second), Values: cur[i],
			Segments: schemas.Segments{Device: devices[i%3], Country: countries[i%4], Referrer: refs[i%3]}}
	}
	for i := range 3 * 2000 * 4 { // past every segment's self-reference
		_ = w.mo.observeVector(&vecs[i%len(vecs)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := range b.N {
		_ = w.mo.observeVector(&vecs[i%len(vecs)])
	}
	cpu.report(b)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchFeatures, "ns/feature")
}

// discard is a Publisher that drops what it is given.
type discard struct{}

func (discard) Publish(string, ...*message.Message) error { return nil }
func (discard) Close() error                              { return nil }

// cpuTimer reports the process's CPU time per feature beside the wall time
// testing measures: on a shared machine wall time counts the time other
// jobs held the cores, CPU time does not (it does count the GC's).
type cpuTimer struct{ start time.Duration }

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuTimer { return cpuTimer{processCPU()} }

func (c cpuTimer) report(b *testing.B) {
	b.ReportMetric(float64((processCPU()-c.start).Nanoseconds())/float64(b.N)/benchFeatures, "cpu-ns/feature")
}
