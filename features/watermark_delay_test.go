package features

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestWatermarkDelayIsWallClockMinusWatermark: 0 before the first
// watermark, then now minus the watermark gauge's value, at scrape time.
func TestWatermarkDelayIsWallClockMinusWatermark(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	delay := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "driftline_features_watermark_delay_seconds" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("driftline_features_watermark_delay_seconds not gathered")
		return 0
	}
	if d := delay(); d != 0 {
		t.Fatalf("delay before any watermark = %v, want 0", d)
	}
	m.watermark.Set(float64(time.Now().Add(-90*time.Second).UnixMilli()) / 1000)
	if d := delay(); d < 89 || d > 120 {
		t.Fatalf("delay of a watermark 90 s old = %v", d)
	}
	if got := testutil.ToFloat64(m.watermark); got <= 0 {
		t.Fatalf("the watermark gauge itself = %v, want the value set", got)
	}
}
