package features

import (
	stdjson "encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// simulatedRecords returns a storefront stream as the stage reads it.
func simulatedRecords(b *testing.B, d time.Duration) []*kgo.Record {
	b.Helper()
	sim, err := storefront.New(storefront.Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var recs []*kgo.Record
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) {
		recs = append(recs, &kgo.Record{Topic: schemas.TopicOf(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil), Timestamp: time.Now()})
	})
	return recs
}

// BenchmarkHandle is the stage's per-record work (decode, validate, state,
// vector, score, labels, output encoding) without Kafka, on one core.
// Compare with BenchmarkBaselineEncodingJSON in the same run.
func BenchmarkHandle(b *testing.B) {
	recs := simulatedRecords(b, 2*time.Hour)
	p := newStage(b, true).p
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i%len(recs) == 0 {
			b.StopTimer()
			p = newStage(b, true).p // replay the stream from a clean state
			b.StartTimer()
		}
		p.handle(recs[i%len(recs)])
		if len(p.out) > 1024 {
			// A batch boundary: the changelog records of the keys the
			// batch changed, as Run writes them, buffers reused.
			p.out = p.flushChangelog(p.out)
			p.resetOutputs()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkBaselineEncodingJSON is encoding/json decoding the same records
// into the same struct, no validation, nothing else: the floor a naive
// stage starts from.
func BenchmarkBaselineEncodingJSON(b *testing.B) {
	recs := simulatedRecords(b, 2*time.Hour)
	var e schemas.Event
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.Reset()
		if err := stdjson.Unmarshal(recs[i%len(recs)].Value, &e); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
