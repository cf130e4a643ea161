package monitors

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// watched is a Monitor fed record by record, publishing to Watermill's
// in-process GoChannel so the test reads alerts and retrain requests as a
// subscriber would.
type watched struct {
	mo      *Monitor
	alerts  <-chan *message.Message
	retrain <-chan *message.Message
	n       int
}

func newWatched(t testing.TB, cfg Config, ref [][]float64) *watched {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	pubsub := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1000, Persistent: true}, watermill.NopLogger{})
	t.Cleanup(func() { pubsub.Close() })
	mo, err := New(cfg, kcfg, consumers.NewModelFeed(kcfg, log), pubsub, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"price", "mobile"}
	mo.install(&schemas.ModelVersion{
		Model: mo.cfg.Model, Version: 1, Features: names,
		Reference: schemas.Profile{Rows: len(ref), Features: profile.Build(names, ref, 10)},
		Metrics:   schemas.ModelMetrics{AUC: 0.8},
	})
	alerts, _ := pubsub.Subscribe(context.Background(), kcfg.Topics.Alerts)
	retrain, _ := pubsub.Subscribe(context.Background(), kcfg.Topics.Retrain)
	return &watched{mo: mo, alerts: alerts, retrain: retrain}
}

func (w *watched) vector(t *testing.T, at time.Time, x []float64) {
	t.Helper()
	b, _ := json.Marshal(schemas.FeatureVector{Model: w.mo.cfg.Model, EventTime: at, Values: x})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicFeatures, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

func (w *watched) label(t *testing.T, at time.Time, score float64, label int) {
	t.Helper()
	b, _ := json.Marshal(schemas.Label{Model: w.mo.cfg.Model, Version: 1, EventTime: at, Score: score, Label: label})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicLabels, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

// drainAlerts drains alerts in event-time order: gochannel may deliver
// messages out of their publish order.
func drainAlerts(ch <-chan *message.Message) []schemas.Alert {
	out := drain[schemas.Alert](ch)
	slices.SortStableFunc(out, func(a, b schemas.Alert) int { return a.EventTime.Compare(b.EventTime) })
	return out
}

func drain[T any](ch <-chan *message.Message) []T {
	var out []T
	for {
		select {
		case m := <-ch:
			var v T
			if json.Unmarshal(m.Payload, &v) == nil {
				out = append(out, v)
			}
			m.Ack()
		case <-time.After(50 * time.Millisecond):
			return out
		}
	}
}

func sample(rng *rand.Rand, priceMean, mobileShare float64) []float64 {
	m := 0.0
	if rng.Float64() < mobileShare {
		m = 1
	}
	return []float64{priceMean * rng.ExpFloat64(), m}
}

func reference(rng *rand.Rand, n int) [][]float64 {
	ref := make([][]float64, n)
	for i := range ref {
		ref[i] = sample(rng, 40, 0.5)
	}
	return ref
}

func TestStationaryStreamRaisesNoAlert(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := newWatched(t, Config{}, reference(rng, 20000))
	for i := range 100_000 {
		w.vector(t, t0.Add(time.Duration(i)*time.Second), sample(rng, 40, 0.5))
	}
	if a := drainAlerts(w.alerts); len(a) != 0 {
		t.Fatalf("%d alerts on a stationary stream, first %+v", len(a), a[0])
	}
}

func TestShiftRaisesOneAlertAndOneRetrain(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	w := newWatched(t, Config{}, reference(rng, 20000))
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := range 5000 {
		w.vector(t, at(i), sample(rng, 40, 0.5))
	}
	// Prices double; the mobile share does not move. Shifted traffic for
	// less than the 2h cooldown gives one incident, not one per evaluation.
	for i := 5000; i < 11000; i++ {
		w.vector(t, at(i), sample(rng, 80, 0.5))
	}
	alerts := drainAlerts(w.alerts)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want exactly one (for price): %+v", len(alerts), alerts)
	}
	a := alerts[0]
	if a.Kind != schemas.AlertDrift || a.Feature != "price" || a.Statistic != "wasserstein" || a.Value <= a.Threshold || a.Version != 1 {
		t.Errorf("alert = %+v", a)
	}
	if a.EventTime.Before(at(5000)) {
		t.Errorf("alert at %s, before the shift at %s", a.EventTime, at(5000))
	}
	if delay := a.EventTime.Sub(at(5000)); delay > 2000*time.Second {
		t.Errorf("detected %s (%d vectors) after the shift, want within 2000 vectors", delay, int(delay.Seconds()))
	}
	reqs := drain[schemas.RetrainRequest](w.retrain)
	if len(reqs) != 1 {
		t.Fatalf("%d retrain requests, want 1", len(reqs))
	}
	if r := reqs[0]; r.FromVersion != 1 || r.DataFrom.Before(at(5000)) || r.IdempotencyKey == "" || len(r.Alerts) != 1 {
		t.Errorf("retrain request = %+v", r)
	}

	// The champion stays (say the gate kept it) and the shift persists: a
	// cooldown after the first, the breach fires again as a new incident.
	for i := 11000; i < 16000; i++ {
		w.vector(t, at(i), sample(rng, 80, 0.5))
	}
	again := drain[schemas.RetrainRequest](w.retrain)
	if len(again) != 1 || again[0].IdempotencyKey == reqs[0].IdempotencyKey || again[0].DataFrom.Sub(a.EventTime) < 2*time.Hour {
		t.Fatalf("after the cooldown want one new retrain request for a new incident, got %+v", again)
	}
	if n := len(drainAlerts(w.alerts)); n != 1 {
		t.Errorf("%d alerts after the cooldown, want 1", n)
	}
}

func TestMalformedReferenceDisablesDriftInsteadOfPanicking(t *testing.T) {
	w := newWatched(t, Config{}, reference(rand.New(rand.NewPCG(7, 7)), 1000))
	bad := *w.mo.champ
	bad.Version = 2
	bad.Reference.Features = []schemas.FeatureProfile{
		{Name: "price", Edges: []float64{1, 2, 3}, Fractions: []float64{1}}, // fewer fractions than bins
		{Name: "mobile", Edges: []float64{0.5}, Fractions: []float64{0.5, 0.5}},
	}
	w.mo.install(&bad)
	w.vector(t, t0, []float64{2.5, 1}) // must not index out of range
	if w.mo.drift != nil {
		t.Error("drift window built on a malformed reference profile")
	}
}

func TestAccuracyDropRaisesAlert(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	w := newWatched(t, Config{}, reference(rng, 2000))
	for i := range 3000 {
		y := rng.IntN(2)
		score := 0.3 + 0.4*float64(y) + 0.2*rng.Float64() // separable: AUC 1
		if i >= 1500 {
			score = rng.Float64() // the model lost its signal: AUC ~0.5
		}
		w.label(t, t0.Add(time.Duration(i)*time.Second), score, y)
	}
	alerts := ofKind(drainAlerts(w.alerts), schemas.AlertAccuracy)
	if len(alerts) != 1 || alerts[0].Value > 0.72 {
		t.Fatalf("want one accuracy alert with AUC below 0.72, got %+v", alerts)
	}
	if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 1 {
		t.Errorf("%d retrain requests, want 1", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{
		{Window: 10},
		{Window: 1000, EvaluateEvery: 2000},
		{Window: 1000, EvaluateEvery: 10, Consecutive: -1},
		{Window: 1000, EvaluateEvery: 10, Consecutive: 1, MinLabels: 600, AccuracyWindow: 500},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
	}
}

func (w *watched) prediction(t *testing.T, at time.Time, score float64) {
	t.Helper()
	b, _ := json.Marshal(schemas.Prediction{Model: w.mo.cfg.Model, Version: w.mo.champ.Version, EventTime: at, Score: score})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicPredictions, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

func TestScoreDriftRaisesPredictionDriftAlert(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	w := newWatched(t, Config{}, reference(rng, 2000))
	ref := make([]float64, 20000)
	for i := range ref {
		ref[i] = rng.Float64() * 0.5 // scores of the training set
	}
	v := *w.mo.champ
	v.Version = 2
	v.Reference.Score = profile.BuildOne("score", ref, 10)
	w.mo.install(&v)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := range 5000 {
		w.prediction(t, at(i), rng.Float64()*0.5)
	}
	if a := drainAlerts(w.alerts); len(a) != 0 {
		t.Fatalf("%d alerts on stationary scores: %+v", len(a), a)
	}
	for i := 5000; i < 9000; i++ {
		w.prediction(t, at(i), 0.3+rng.Float64()*0.5) // the model now scores everyone higher
	}
	alerts := drainAlerts(w.alerts)
	if len(alerts) != 1 || alerts[0].Kind != schemas.AlertPredictionDrift || alerts[0].Feature != "score" || alerts[0].Version != 2 {
		t.Fatalf("want one prediction_drift alert on score for v2, got %+v", alerts)
	}
	if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 1 {
		t.Errorf("%d retrain requests, want 1", n)
	}
}

func (w *watched) labelAt(t *testing.T, at, labelTime time.Time, score float64, label int) {
	t.Helper()
	b, _ := json.Marshal(schemas.Label{Model: w.mo.cfg.Model, Version: w.mo.champ.Version, EventTime: at, LabelTime: labelTime, Score: score, Label: label})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicLabels, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

func ofKind(alerts []schemas.Alert, kind string) []schemas.Alert {
	var out []schemas.Alert
	for _, a := range alerts {
		if a.Kind == kind {
			out = append(out, a)
		}
	}
	return out
}
