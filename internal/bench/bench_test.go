package bench

import (
	"context"
	"testing"
)

// TestBenchReportsEveryFigure runs the benchmark small: every figure must be
// measured, and every cart event of the live run must get its prediction
// (Run fails otherwise).
func TestBenchReportsEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the broker and the stage for a few seconds")
	}
	r, err := Run(context.Background(), Config{Users: 2000, E2EEvents: 20_000, LiveRate: 2000, LiveSeconds: 1})
	if err != nil {
		t.Fatal(err)
	}
	if r.HotPathEventsPerSec <= 0 || r.BaselineEventsPerSec <= 0 || r.E2EEventsPerSec <= 0 || r.E2EEvents < 20_000 {
		t.Errorf("throughput figures missing: %+v", r)
	}
	if r.BytesPerActiveUser <= 0 || r.ActiveUsers != 2000 {
		t.Errorf("state size missing: %+v", r)
	}
	if r.LatencySamples < 50 || r.P99EventToPredictionMs < r.P50EventToPredictionMs || r.P50EventToPredictionMs <= 0 {
		t.Errorf("latency figures inconsistent: %+v", r)
	}
	if r.P50FloorMs <= 0 || r.P99FloorMs < r.P50FloorMs {
		t.Errorf("exactly-once floor inconsistent: %+v", r)
	}
}
