package monitors

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// sketchCase is one case of testdata/drift/sketch_cases.json, written by
// testdata/drift/sketch_gen.py with SciPy on the raw samples.
type sketchCase struct {
	Name              string    `json:"name"`
	Reference         []float64 `json:"reference"`
	Current           []float64 `json:"current"`
	KSStatistic       float64   `json:"ks_statistic"`
	KSPValue          float64   `json:"ks_pvalue"`
	WassersteinNormed float64   `json:"wasserstein_normed"`
}

func loadSketchCases(t testing.TB) []sketchCase {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "drift", "sketch_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []sketchCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return f.Cases
}

// windowOf feeds current through a drift window over the reference
// profile of reference, judged by method.
func windowOf(t testing.TB, reference, current []float64, method Method) *driftWindow {
	p := profile.BuildOne("x", reference, 10)
	w, err := newDriftWindow(schemas.Profile{Rows: len(reference), Features: []schemas.FeatureProfile{p}}, len(current),
		map[string]Method{"x": method}, map[Method]float64{method: method.DefaultThreshold()})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range current {
		if err := w.add([]float64{v}, t0); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// The online KS and normalised Wasserstein compare the window with the
// reference's DDSketch (0.5% relative accuracy), not with the raw sample:
// they agree with SciPy on the raw samples within the sketch's resolution,
// and give the same verdict at Evidently's thresholds.
func TestSketchStatisticsAgreeWithSciPy(t *testing.T) {
	// KS D is within 1e-3 of SciPy's in every case: the window's side is
	// exact (ksRefined walks its raw values), the reference's is
	// interpolated inside its buckets, up to its exact min and max, which
	// the profile keeps (a window beyond the reference's range has its sup
	// at the maximum, inside the last bucket); a small reference (800
	// rows, whose CDF climbs in steps of 1/800 that no sketch keeps) keeps
	// its sorted values, and its KS is SciPy's.
	const (
		ksTol = 1e-3
		wTol  = 1e-3 // normalised Wasserstein
	)
	for _, c := range loadSketchCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			ks := windowOf(t, c.Reference, c.Current, MethodKS)
			d := ks.ksRefined(0)
			bucketed := ks.cols[0].ksStatistic(ks.n)
			st := ks.evaluate(0)
			wa := windowOf(t, c.Reference, c.Current, MethodWasserstein)
			wn := wa.evaluate(0).value
			t.Logf("KS D %.6f vs SciPy %.6f (|diff| %.1e; bucket ends only: %.1e), p %.3g vs %.3g; W normed %.6f vs %.6f (|diff| %.1e)",
				d, c.KSStatistic, math.Abs(d-c.KSStatistic), math.Abs(bucketed-c.KSStatistic), st.value, c.KSPValue, wn, c.WassersteinNormed, math.Abs(wn-c.WassersteinNormed))
			if math.Abs(d-c.KSStatistic) > ksTol {
				t.Errorf("KS statistic %.6f, SciPy %.6f: |diff| %.1e > %.0e", d, c.KSStatistic, math.Abs(d-c.KSStatistic), ksTol)
			}
			if math.Abs(wn-c.WassersteinNormed) > wTol {
				t.Errorf("normalised Wasserstein %.6f, SciPy %.6f", wn, c.WassersteinNormed)
			}
			if (st.value < 0.05) != (c.KSPValue < 0.05) {
				t.Errorf("KS verdict differs: p %.4g, SciPy %.4g", st.value, c.KSPValue)
			}
			if (wn >= 0.1) != (c.WassersteinNormed >= 0.1) {
				t.Errorf("Wasserstein verdict differs: %.4f, SciPy %.4f", wn, c.WassersteinNormed)
			}
		})
	}
}

// legacyProfile is p as a registry record written before session 9 carries
// it: a sketch without min, max and values, decoded from JSON.
func legacyProfile(t testing.TB, p schemas.FeatureProfile) schemas.FeatureProfile {
	sk := *p.Sketch
	sk.Min, sk.Max, sk.Values = nil, nil, nil
	p.Sketch = &sk
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"min"`, `"max"`, `"values"`} {
		if strings.Contains(string(b), field) {
			t.Fatalf("legacy profile JSON has %s: %s", field, b)
		}
	}
	var back schemas.FeatureProfile
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// A profile from an older registry record (no min, max or values) is still
// monitored by KS on its sketch alone, within the bound that holds without
// them (2e-3); the new fields are what bring the two cases that need them
// to 1e-3, and the small reference to SciPy's exact statistic.
func TestSketchKSOnLegacyProfiles(t *testing.T) {
	for _, c := range loadSketchCases(t) {
		if c.Name != "small reference (KS by default)" && c.Name != "current beyond the reference's range" {
			continue
		}
		t.Run(c.Name, func(t *testing.T) {
			for _, legacy := range []bool{false, true} {
				p := profile.BuildOne("x", c.Reference, 10)
				if legacy {
					p = legacyProfile(t, p)
				}
				w, err := newDriftWindow(schemas.Profile{Rows: len(c.Reference), Features: []schemas.FeatureProfile{p}}, len(c.Current),
					map[string]Method{"x": MethodKS}, map[Method]float64{MethodKS: MethodKS.DefaultThreshold()})
				if err != nil {
					t.Fatalf("legacy %v: %v", legacy, err)
				}
				for _, v := range c.Current {
					if err := w.add([]float64{v}, t0); err != nil {
						t.Fatal(err)
					}
				}
				d := w.ksRefined(0)
				diff := math.Abs(d - c.KSStatistic)
				t.Logf("legacy %v: KS D %.6f vs SciPy %.6f (|diff| %.1e)", legacy, d, c.KSStatistic, diff)
				switch {
				case legacy && diff > 2e-3:
					t.Errorf("legacy profile: KS D %.6f, SciPy %.6f, |diff| %.1e > 2e-3", d, c.KSStatistic, diff)
				case legacy && diff <= 1e-3:
					t.Errorf("legacy profile already within 1e-3 (%.1e): the case no longer tests what min/max/values add", diff)
				case !legacy && diff > 1e-3:
					t.Errorf("KS D %.6f, SciPy %.6f, |diff| %.1e > 1e-3", d, c.KSStatistic, diff)
				}
			}
		})
	}
}

// A small reference's KS is exact even where both samples hold ties and a
// window value is NaN (counted above every value, as the grid counts it).
func TestKSExactTiesAndNaN(t *testing.T) {
	ref := []float64{1, 2, 2, 3, 5, 5, 5, 8, 9, 10, 10, 12}
	cur := []float64{2, 2, 4, 5, 5, 11, 13, math.NaN()}
	// F_ref and F_cur at every value of either sample, by counting.
	var want float64
	for _, x := range append(slices.Clone(ref), cur...) {
		if x != x {
			continue
		}
		var a, b float64
		for _, r := range ref {
			if r <= x {
				a++
			}
		}
		for _, c := range cur {
			if c <= x {
				b++
			}
		}
		want = max(want, math.Abs(a/float64(len(ref))-b/float64(len(cur))))
	}
	w := windowOf(t, ref, cur, MethodKS)
	if w.cols[0].g.exact == nil {
		t.Fatal("a 12-row reference keeps no exact values")
	}
	if got := w.ksRefined(0); math.Abs(got-want) > 1e-15 {
		t.Errorf("exact KS %.17g, counted %.17g", got, want)
	}
}
