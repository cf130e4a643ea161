package monitors

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

func (w *watched) segVector(t *testing.T, at time.Time, seg schemas.Segments, x []float64) {
	t.Helper()
	b, _ := json.Marshal(schemas.FeatureVector{Model: w.mo.cfg.Model, EventTime: at, Segments: seg, Values: x})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicFeatures, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

func (w *watched) segLabel(t *testing.T, at time.Time, seg schemas.Segments, score float64, label int) {
	t.Helper()
	b, _ := json.Marshal(schemas.Label{Model: w.mo.cfg.Model, Version: w.mo.champ.Version, EventTime: at, Segments: seg, Score: score, Label: label})
	w.n++
	if err := w.mo.handle(&kgo.Record{Topic: schemas.TopicLabels, Value: b, Offset: int64(w.n)}); err != nil {
		t.Fatal(err)
	}
}

var (
	mobile  = schemas.Segments{Device: "mobile", Country: "DE"}
	desktop = schemas.Segments{Device: "desktop", Country: "DE"}
)

// Prices double on mobile, a tenth of the traffic: all traffic moves too
// little to alert, the mobile segment raises its own drift alert (feature
// price, segment device=mobile), desktop none.
func TestSegmentDriftNamesTheSegment(t *testing.T) {
	rng := rand.New(rand.NewPCG(61, 62))
	w := newWatched(t, Config{Segments: []string{"device"}}, reference(rng, 20000))
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	feed := func(from, to int, mobilePrice float64) {
		for i := from; i < to; i++ {
			seg, price := desktop, 40.0
			if i%10 == 0 {
				seg, price = mobile, mobilePrice
			}
			w.segVector(t, at(i), seg, sample(rng, price, 0.5))
		}
	}
	feed(0, 30000, 40)
	if a := drainAlerts(w.alerts); len(a) != 0 {
		t.Fatalf("%d alerts before the shift: %+v", len(a), a)
	}
	feed(30000, 40000, 80)
	bySeg := map[string][]schemas.Alert{}
	for _, a := range drainAlerts(w.alerts) {
		bySeg[a.Segment] = append(bySeg[a.Segment], a)
	}
	m := bySeg["device=mobile"]
	if len(m) != 1 || m[0].Feature != "price" || m[0].Kind != schemas.AlertDrift || m[0].DedupKey != "purchase_propensity/v1/drift/device=mobile/price/wasserstein" {
		t.Errorf("mobile segment alerts = %+v, want one on price", m)
	}
	if d, o := bySeg["device=desktop"], bySeg[""]; len(d) != 0 || len(o) != 0 {
		t.Errorf("desktop (%+v) and all traffic (%+v) moved too little to alert", d, o)
	}
	if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 1 {
		t.Errorf("%d retrain requests, want one for the incident", n)
	}
}

// When all traffic drifts, its alert tells it: the segments that moved with
// it are tracked silently instead of alerting once each.
func TestSegmentDriftCoveredByAllTraffic(t *testing.T) {
	rng := rand.New(rand.NewPCG(65, 66))
	w := newWatched(t, Config{Segments: []string{"device"}}, reference(rng, 20000))
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := range 14000 {
		seg, price := desktop, 40.0
		if i%2 == 0 {
			seg = mobile
		}
		if i >= 10000 {
			price = 80
		}
		w.segVector(t, at(i), seg, sample(rng, price, 0.5))
	}
	alerts := drainAlerts(w.alerts)
	if len(alerts) != 1 || alerts[0].Segment != "" || alerts[0].Feature != "price" {
		t.Fatalf("alerts = %+v, want one, on price for all traffic", alerts)
	}
	if n := testutil.ToFloat64(w.mo.m.covered); n != 2 {
		t.Errorf("covered segment incidents = %g, want 2 (mobile and desktop)", n)
	}
}

// The mobile segment's scores lose their signal while desktop's keep it: a
// fairness alert names device=mobile, asks for no retrain, and a segment
// below the minimum sample size is not judged.
func TestFairnessAlertOnASegmentBelowTheOverall(t *testing.T) {
	rng := rand.New(rand.NewPCG(63, 64))
	w := newWatched(t, Config{Segments: []string{"device", "referrer"}, Detectors: []string{}}, reference(rng, 2000))
	tiny := schemas.Segments{Device: "tablet", Referrer: "social"}
	for i := range 6000 {
		y := rng.IntN(2)
		seg, score := desktop, 0.3+0.4*float64(y)+0.2*rng.Float64()
		switch {
		case i%50 == 0:
			seg, score = tiny, rng.Float64() // few labels: below min_segment_samples
		case i%2 == 0:
			seg, score = mobile, rng.Float64()
		}
		w.segLabel(t, t0.Add(time.Duration(i)*time.Second), seg, score, y)
	}
	alerts := ofKind(drainAlerts(w.alerts), schemas.AlertFairness)
	if len(alerts) != 1 {
		t.Fatalf("%d fairness alerts, want 1: %+v", len(alerts), alerts)
	}
	a := alerts[0]
	if a.Segment != "device=mobile" || a.Statistic != "roc_auc" || a.Comparison != "<" || a.Value >= a.Threshold ||
		a.Samples < 500 || a.Evidence["overall_auc"] <= a.Threshold {
		t.Errorf("fairness alert = %+v", a)
	}
	for _, r := range drain[schemas.RetrainRequest](w.retrain) {
		for _, id := range r.Alerts {
			if id == a.ID {
				t.Errorf("retrain request %+v for a fairness alert", r)
			}
		}
	}
}
