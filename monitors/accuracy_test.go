package monitors

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/driftline/driftline/internal/accuracy"
)

// The rolling accuracy gauges are the internal/accuracy metrics (checked
// against scikit-learn) of exactly the latest AccuracyWindow labels, and
// every label's lag lands in the histogram.
func TestRollingAccuracyMetricsAndLabelLag(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	w := newWatched(t, Config{AccuracyWindow: 500, MinLabels: 500, EvaluateEvery: 100}, reference(rng, 2000))
	var scores []float64
	var labels []int
	for i := range 1200 {
		y := rng.IntN(2)
		s := min(1, max(0, 0.35+0.3*float64(y)+0.3*(rng.Float64()-0.5)))
		scores, labels = append(scores, s), append(labels, y)
		at := t0.Add(time.Duration(i) * time.Second)
		w.labelAt(t, at, at.Add(time.Duration(i%30)*time.Minute), s, y)
	}
	last, lastY := scores[len(scores)-500:], labels[len(labels)-500:]
	p, r := accuracy.PrecisionRecall(last, lastY, 0.5)
	for _, g := range []struct {
		name      string
		got, want float64
	}{
		{"auc", testutil.ToFloat64(w.mo.m.auc), accuracy.AUC(last, lastY)},
		{"log_loss", testutil.ToFloat64(w.mo.m.logLoss), accuracy.LogLoss(last, lastY)},
		{"brier", testutil.ToFloat64(w.mo.m.brier), accuracy.Brier(last, lastY)},
		{"ece", testutil.ToFloat64(w.mo.m.ece), accuracy.ECE(last, lastY)},
		{"precision", testutil.ToFloat64(w.mo.m.precision), p},
		{"recall", testutil.ToFloat64(w.mo.m.recall), r},
	} {
		if math.Abs(g.got-g.want) > 1e-12 || math.IsNaN(g.got) {
			t.Errorf("%s gauge = %g, want %g over the latest 500 labels", g.name, g.got, g.want)
		}
	}
	var m dto.Metric
	if err := w.mo.m.labelLag.Write(&m); err != nil {
		t.Fatal(err)
	}
	if h := m.GetHistogram(); h.GetSampleCount() != 1200 || math.Abs(h.GetSampleSum()-40*(0+29)*30/2*60) > 1e-6 {
		t.Errorf("label lag histogram: %d samples summing to %gs", h.GetSampleCount(), h.GetSampleSum())
	}
}
