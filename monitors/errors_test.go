package monitors

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

// The change detectors on the error stream, wired into the Monitor: a
// model whose error rises at a known label raises one error_change alert
// per detector after that label and none before it; a stationary error
// stream raises none.
func TestDetectorsOnTheErrorStream(t *testing.T) {
	const change = 3000
	for _, c := range []struct {
		detector string
		maxDelay int // labels after the change
	}{
		{DetectorADWIN, 300},
		{DetectorPageHinkley, 600},
		{DetectorDDM, 600},
	} {
		t.Run(c.detector, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(41, 42))
			w := newWatched(t, Config{Detectors: []string{c.detector}, MinLabels: 1000, AccuracyWindow: 1000}, reference(rng, 2000))
			at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
			for i := range change + 2000 {
				y := rng.IntN(2)
				// A good model (|error| ~0.25, 5% wrong at 0.5), then a
				// worse one (|error| ~0.45, ~35% wrong).
				s := 0.25 + 0.5*float64(y) + 0.2*(rng.Float64()-0.5)
				if i >= change {
					s = 0.4 + 0.2*float64(y) + 0.6*(rng.Float64()-0.5)
				}
				w.label(t, at(i), s, y)
			}
			alerts := ofKind(drainAlerts(w.alerts), schemas.AlertErrorChange)
			if len(alerts) != 1 {
				t.Fatalf("%d error_change alerts, want 1: %+v", len(alerts), alerts)
			}
			a := alerts[0]
			delay := int(a.EventTime.Sub(at(change)) / time.Second)
			t.Logf("%s detected %d labels after the change: mean error %.3f, before %.3f", c.detector, delay, a.Value, a.Threshold)
			if a.Statistic != c.detector || delay < 0 || delay > c.maxDelay || a.Value <= a.Threshold || a.Comparison != ">" {
				t.Errorf("alert %+v, %d labels after the change (want 0..%d)", a, delay, c.maxDelay)
			}
		})
	}
}

func TestDetectorsQuietOnAStationaryErrorStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(43, 44))
	w := newWatched(t, Config{}, reference(rng, 2000))
	for i := range 100_000 {
		y := rng.IntN(2)
		w.label(t, t0.Add(time.Duration(i)*time.Second), 0.3+0.4*float64(y)+0.4*(rng.Float64()-0.5), y)
	}
	if a := drainAlerts(w.alerts); len(a) != 0 {
		t.Fatalf("%d alerts on 100k stationary labels, first %+v", len(a), a[0])
	}
}

// ADWIN finds negligible rises on long streams; the alert policy keeps them
// from waking anyone: the same stream alerts with any rise allowed, and not
// with the default MinErrorIncrease.
func TestADWINIgnoresANegligibleErrorRise(t *testing.T) {
	run := func(minIncrease float64) int {
		rng := rand.New(rand.NewPCG(45, 46))
		w := newWatched(t, Config{MinErrorIncrease: minIncrease, MinLabels: 1000, AccuracyWindow: 1000}, reference(rng, 2000))
		for i := range 30_000 {
			y := rng.IntN(2)
			e := 0.25 + 0.2*(rng.Float64()-0.5)
			if i >= 10_000 {
				e += 0.01 // mean absolute error 0.25 -> 0.26
			}
			s := e
			if y == 1 {
				s = 1 - e
			}
			w.label(t, t0.Add(time.Duration(i)*time.Second), s, y)
		}
		return len(ofKind(drainAlerts(w.alerts), schemas.AlertErrorChange))
	}
	if n := run(-1); n == 0 {
		t.Fatal("with any rise allowed, ADWIN raised nothing: the stream does not exercise the floor")
	}
	if n := run(0); n != 0 {
		t.Fatalf("%d error_change alerts for a 0.01 rise of the mean error, want 0 (default floor 0.02)", n)
	}
}
