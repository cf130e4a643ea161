package features

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// constant returns a version whose score is sigmoid(bias) for any input.
func constant(version int, bias float64) *schemas.ModelVersion {
	spec := PurchasePropensity()
	n := len(spec.Features)
	return &schemas.ModelVersion{Model: spec.Name, Version: version, Features: spec.Features,
		Weights: make([]float64, n), Mean: make([]float64, n), Std: slices.Repeat([]float64{1}, n), Bias: bias}
}

// TestSwapIsAtomicUnderLoad scores continuously while versions swap: every
// score must come from the version reported with it (never a half-installed
// model), and scoring never stops.
func TestSwapIsAtomicUnderLoad(t *testing.T) {
	sc := NewScorer(PurchasePropensity())
	want := map[int]float64{}
	for v := 1; v <= 50; v++ {
		bias := float64(v) / 10
		want[v] = 1 / (1 + math.Exp(-bias))
	}
	if err := sc.Swap(constant(1, 0.1)); err != nil {
		t.Fatal(err)
	}
	x := make([]float64, len(PurchasePropensity().Features))
	var stop atomic.Bool
	var scored atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				s, v, ok := sc.Score(x)
				if !ok {
					t.Error("no model served during a swap")
					return
				}
				if math.Abs(s-want[v]) > 1e-12 {
					t.Errorf("score %g reported as v%d, whose score is %g", s, v, want[v])
					return
				}
				scored.Add(1)
			}
		}()
	}
	// Each swap waits until the scorers have made progress since the last
	// one, so swaps and scoring really overlap.
	for v := 2; v <= 50; v++ {
		before := scored.Load()
		checkfor.Until(t, 10*time.Second, "scoring to go on between swaps", func() bool { return scored.Load() >= before+10 })
		if err := sc.Swap(constant(v, float64(v)/10)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if sc.Version() != 50 || scored.Load() == 0 {
		t.Errorf("version %d after the swaps, %d scores", sc.Version(), scored.Load())
	}
}
