package monitors

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// The reference values of the drift statistics live in
// testdata/drift/cases.json, written by testdata/drift/gen.py with SciPy
// (Debian bookworm python3-scipy 1.10.1, numpy 1.24.2; the versions are in
// the file). Regenerate with
//
//	/usr/bin/python3 testdata/drift/gen.py
//
// Agreement: statistics and distances to 1e-6 absolute (relative above 1);
// p-values to 1e-6 absolute, except that a reference p-value below 1e-6 is
// compared on a log scale, |log10 got - log10 want| <= 1e-6·|log10 want|,
// since an absolute 1e-6 says nothing there; a reference below 1e-300
// (underflowed to 0 or a subnormal) needs a result below 1e-300.

const (
	driftTol        = 1e-6
	driftTinyP      = 1e-6
	driftUnderflowP = 1e-300
)

// driftFloat is a float in cases.json, where gen.py writes the non-finite
// ones as "Infinity", "-Infinity" and "NaN".
type driftFloat float64

func (f *driftFloat) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		switch s {
		case "Infinity":
			*f = driftFloat(math.Inf(1))
		case "-Infinity":
			*f = driftFloat(math.Inf(-1))
		case "NaN":
			*f = driftFloat(math.NaN())
		default:
			return fmt.Errorf("cannot parse float %q", s)
		}
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*f = driftFloat(v)
	return nil
}

type driftCases struct {
	NumpyVersion string `json:"numpy_version"`
	ScipyVersion string `json:"scipy_version"`
	Numeric      []struct {
		Name            string     `json:"name"`
		Reference       []float64  `json:"reference"`
		Current         []float64  `json:"current"`
		KSStatistic     driftFloat `json:"ks_statistic"`
		KSPValue        driftFloat `json:"ks_pvalue"`
		KSMethod        string     `json:"ks_method"`
		KSAsympN        int        `json:"ks_asymp_n"`
		Wasserstein     driftFloat `json:"wasserstein"`
		WassersteinNorm driftFloat `json:"wasserstein_norm"`
	} `json:"numeric"`
	JensenShannon []struct {
		Name     string     `json:"name"`
		P        []float64  `json:"p"`
		Q        []float64  `json:"q"`
		Distance driftFloat `json:"distance"`
	} `json:"jensenshannon"`
	ChiSquare []struct {
		Name            string     `json:"name"`
		ReferenceCounts []float64  `json:"reference_counts"`
		CurrentCounts   []float64  `json:"current_counts"`
		Statistic       driftFloat `json:"statistic"`
		PValue          driftFloat `json:"pvalue"`
	} `json:"chisquare"`
	KStwoSF []struct {
		N  int        `json:"n"`
		D  float64    `json:"d"`
		SF driftFloat `json:"sf"`
	} `json:"kstwo_sf"`
	Smirnov []struct {
		N  int        `json:"n"`
		D  float64    `json:"d"`
		SF driftFloat `json:"sf"`
	} `json:"smirnov"`
	Chi2SF []struct {
		DF float64    `json:"df"`
		X  float64    `json:"x"`
		SF driftFloat `json:"sf"`
	} `json:"chi2_sf"`
	GammaIncc []struct {
		A float64    `json:"a"`
		X float64    `json:"x"`
		Q driftFloat `json:"q"`
	} `json:"gammaincc"`
}

var loadDriftCases = sync.OnceValues(func() (*driftCases, error) {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "drift", "cases.json"))
	if err != nil {
		return nil, err
	}
	c := new(driftCases)
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("cannot decode testdata/drift/cases.json: %w", err)
	}
	return c, nil
})

func driftCasesFor(t testing.TB) *driftCases {
	t.Helper()
	c, err := loadDriftCases()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// valueErr is the error of a statistic or distance against SciPy's: the
// absolute difference, relative above 1. Equal infinities and NaNs agree.
func valueErr(got, want float64) float64 {
	if got == want || (math.IsNaN(got) && math.IsNaN(want)) {
		return 0
	}
	return math.Abs(got-want) / math.Max(1, math.Abs(want))
}

// pValueErr is the error of a p-value against SciPy's, in the unit of the
// tolerance that applies (see the comment at the top): absolute, or
// relative on log10 below driftTinyP.
func pValueErr(got, want float64) float64 {
	switch {
	case got == want || (math.IsNaN(got) && math.IsNaN(want)):
		return 0
	case want < driftUnderflowP:
		if got < driftUnderflowP {
			return 0
		}
		return math.Inf(1)
	case want < driftTinyP:
		if !(got > 0) {
			return math.Inf(1)
		}
		lw := math.Log10(want)
		return math.Abs(math.Log10(got)-lw) / math.Abs(lw)
	}
	return math.Abs(got - want)
}

// maxErr keeps the largest error seen per statistic, for the log.
type maxErr map[string]float64

func (m maxErr) check(t *testing.T, what, name string, got, want, err float64) {
	t.Helper()
	m[what] = max(m[what], err)
	if !(err <= driftTol) {
		t.Errorf("%s: %s = %.17g, SciPy %.17g (error %.3g)", name, what, got, want, err)
	}
}

// checkP is check for a p-value, with the errors of tiny p-values (on the
// log scale) kept apart from the absolute ones.
func (m maxErr) checkP(t *testing.T, what, name string, got, want float64) {
	t.Helper()
	if want < driftTinyP {
		what += " (p<1e-6, log10 rel)"
	} else {
		what += " (abs)"
	}
	m.check(t, what, name, got, want, pValueErr(got, want))
}

func (m maxErr) log(t *testing.T) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		t.Logf("max error %-28s %.3g", k, m[k])
	}
}

func TestKSAgainstSciPy(t *testing.T) {
	cases := driftCasesFor(t)
	t.Logf("reference: SciPy %s, NumPy %s", cases.ScipyVersion, cases.NumpyVersion)
	errs := maxErr{}
	var s KSScratch
	for _, c := range cases.Numeric {
		d, p := KS(c.Reference, c.Current)
		want, wantP := float64(c.KSStatistic), float64(c.KSPValue)
		errs.check(t, "KS statistic", c.Name, d, want, valueErr(d, want))
		errs.checkP(t, "KS p-value "+c.KSMethod, c.Name, p, wantP)

		// The scratch and sorted variants give the very same floats.
		if d2, p2 := s.KS(c.Reference, c.Current); d2 != d || p2 != p {
			t.Errorf("%s: KSScratch.KS = %v, %v; KS = %v, %v", c.Name, d2, p2, d, p)
		}
		ref, cur := slices.Sorted(slices.Values(c.Reference)), slices.Sorted(slices.Values(c.Current))
		if d2, p2 := s.KSSorted(ref, cur); d2 != d || p2 != p {
			t.Errorf("%s: KSSorted = %v, %v; KS = %v, %v", c.Name, d2, p2, d, p)
		}
		// Swapping the samples changes neither statistic nor p-value.
		if d2, p2 := KS(c.Current, c.Reference); valueErr(d2, d) > 1e-15 || pValueErr(p2, p) > 1e-12 {
			t.Errorf("%s: KS reversed = %v, %v; KS = %v, %v", c.Name, d2, p2, d, p)
		}
	}
	errs.log(t)
}

func TestWassersteinAgainstSciPy(t *testing.T) {
	errs := maxErr{}
	for _, c := range driftCasesFor(t).Numeric {
		w, want := Wasserstein(c.Reference, c.Current), float64(c.Wasserstein)
		errs.check(t, "Wasserstein", c.Name, w, want, valueErr(w, want))
		ref, cur := slices.Sorted(slices.Values(c.Reference)), slices.Sorted(slices.Values(c.Current))
		if w2 := WassersteinSorted(ref, cur); w2 != w {
			t.Errorf("%s: WassersteinSorted = %v, Wasserstein = %v", c.Name, w2, w)
		}
		nw, want := NormalizedWasserstein(c.Reference, c.Current), float64(c.WassersteinNorm)
		errs.check(t, "NormalizedWasserstein", c.Name, nw, want, valueErr(nw, want))
	}
	errs.log(t)
}

func TestJensenShannonAgainstSciPy(t *testing.T) {
	errs := maxErr{}
	for _, c := range driftCasesFor(t).JensenShannon {
		got, want := JensenShannon(c.P, c.Q), float64(c.Distance)
		errs.check(t, "JensenShannon", c.Name, got, want, valueErr(got, want))
		if b := JensenShannonBinned(c.P, c.Q); b != got {
			t.Errorf("%s: JensenShannonBinned = %v, JensenShannon = %v", c.Name, b, got)
		}
	}
	errs.log(t)
}

func TestChiSquareAgainstSciPy(t *testing.T) {
	errs := maxErr{}
	for _, c := range driftCasesFor(t).ChiSquare {
		stat, p := ChiSquare(c.ReferenceCounts, c.CurrentCounts)
		want, wantP := float64(c.Statistic), float64(c.PValue)
		errs.check(t, "ChiSquare statistic", c.Name, stat, want, valueErr(stat, want))
		errs.checkP(t, "ChiSquare p-value", c.Name, p, wantP)
	}
	errs.log(t)
}

// The distributions behind the p-values, over a grid that reaches every
// branch SciPy takes.
func TestKSDistributionsAgainstSciPy(t *testing.T) {
	cases := driftCasesFor(t)
	errs := maxErr{}
	var s KSScratch
	for _, c := range cases.KStwoSF {
		got, want := s.kolmogorovSF(c.N, c.D), float64(c.SF)
		errs.checkP(t, "kstwo.sf", fmt.Sprintf("n=%d d=%v", c.N, c.D), got, want)
	}
	for _, c := range cases.Smirnov {
		got, want := smirnovSF(c.N, c.D), float64(c.SF)
		errs.checkP(t, "smirnov", fmt.Sprintf("n=%d d=%v", c.N, c.D), got, want)
	}
	errs.log(t)
}

func TestChiSquareSFAgainstSciPy(t *testing.T) {
	cases := driftCasesFor(t)
	errs := maxErr{}
	for _, c := range cases.Chi2SF {
		got, want := ChiSquareSF(c.X, c.DF), float64(c.SF)
		errs.checkP(t, "chi2.sf", fmt.Sprintf("df=%v x=%v", c.DF, c.X), got, want)
	}
	// Q itself to 1e-10: absolute, and relative where it is small.
	for _, c := range cases.GammaIncc {
		got, want := gammaQ(c.A, c.X), float64(c.Q)
		err := math.Abs(got-want) / math.Max(1e-300, math.Min(1, want))
		errs["gammaincc (relative below 1)"] = max(errs["gammaincc (relative below 1)"], err)
		if !(err <= 1e-10) {
			t.Errorf("a=%v x=%v: Q = %.17g, SciPy gammaincc %.17g (error %.3g)", c.A, c.X, got, want, err)
		}
	}
	errs.log(t)
}

func TestDriftByHand(t *testing.T) {
	f := func(name string, got, want, tol float64) {
		t.Helper()
		if !(math.Abs(got-want) <= tol) && !(math.IsNaN(got) && math.IsNaN(want)) && got != want {
			t.Errorf("%s = %.17g, want %.17g", name, got, want)
		}
	}
	d, p := KS([]float64{1, 2, 3}, []float64{3, 2, 1})
	f("KS identical: D", d, 0, 0)
	f("KS identical: p", p, 1, 0)
	// One value each: D = 1 whatever the values, so p = 1.
	d, p = KS([]float64{0}, []float64{1})
	f("KS n=1,1: D", d, 1, 0)
	f("KS n=1,1: p", p, 1, 1e-15)
	// 3 and 3 fully separated: 2 of the C(6,3) = 20 orderings.
	d, p = KS([]float64{1, 2, 3}, []float64{4, 5, 6})
	f("KS disjoint 3,3: D", d, 1, 0)
	f("KS disjoint 3,3: p", p, 0.1, 1e-15)
	// 2 and 1: the lone value is first or last in 2 of the 3 orderings.
	d, p = KS([]float64{1, 2}, []float64{3})
	f("KS disjoint 2,1: D", d, 1, 0)
	f("KS disjoint 2,1: p", p, 2.0/3, 1e-15)
	// D_1 = max(U, 1-U): P(D_1 >= x) = 2(1-x) on [1/2, 1].
	var s KSScratch
	f("kstwo.sf(0.7, 1)", s.kolmogorovSF(1, 0.7), 0.6, 1e-15)

	d, p = KS(nil, []float64{1})
	f("KS empty: D", d, math.NaN(), 0)
	f("KS empty: p", p, math.NaN(), 0)
	d, p = KS([]float64{1, math.NaN()}, []float64{1})
	f("KS NaN: D", d, math.NaN(), 0)
	f("KS NaN: p", p, math.NaN(), 0)

	f("JS disjoint", JensenShannon([]float64{1, 0}, []float64{0, 1}), math.Sqrt(math.Ln2), 1e-15)
	f("JS identical", JensenShannon([]float64{0.2, 0.8}, []float64{2, 8}), 0, 1e-8)
	// m = (3/4, 1/4): KL(p‖m) = ln(4/3), KL(q‖m) = ½ln(4/3).
	f("JS (1,0) vs (½,½)", JensenShannon([]float64{1, 0}, []float64{1, 1}), math.Sqrt(0.75*math.Log(4.0/3)), 1e-15)
	f("JS lengths differ", JensenShannon([]float64{1}, []float64{1, 1}), math.NaN(), 0)
	f("JS zero total", JensenShannon([]float64{0, 0}, []float64{1, 1}), math.NaN(), 0)

	f("W one point each", Wasserstein([]float64{0}, []float64{1}), 1, 0)
	f("W mean sorted gap", Wasserstein([]float64{1, 0}, []float64{3, 0}), 1, 0)
	f("W empty", Wasserstein(nil, []float64{1}), math.NaN(), 0)
	// W = 1 (a shift by 1), σ([0, 2]) = 1.
	f("NW shift by one σ", NormalizedWasserstein([]float64{0, 2}, []float64{1, 3}), 1, 1e-15)
	// Constant reference: σ = 0 is floored at 0.001.
	f("NW constant reference", NormalizedWasserstein([]float64{5, 5, 5}, []float64{5, 5, 6}), 1.0/3/0.001, 1e-9)

	// e = (1, 1): χ² = 1 + 1 = 2 on 1 df, p = erfc(1).
	stat, p := ChiSquare([]float64{1, 1}, []float64{2, 0})
	f("χ² 2 categories", stat, 2, 1e-15)
	f("χ² 2 categories: p", p, math.Erfc(1), 1e-15)
	// Reference scaled from 30 to 3: e = (1, 1, 1), χ² = 4 + 1 + 1 on 2 df.
	stat, p = ChiSquare([]float64{10, 10, 10}, []float64{3, 0, 0})
	f("χ² 3 categories", stat, 6, 1e-15)
	f("χ² 3 categories: p", p, math.Exp(-3), 1e-15)
	// A category seen in neither sample does not count.
	stat2, p2 := ChiSquare([]float64{10, 0, 10, 10}, []float64{3, 0, 0, 0})
	f("χ² empty category", stat2, stat, 0)
	f("χ² empty category: p", p2, p, 0)
	stat, p = ChiSquare([]float64{5, 5, 0}, []float64{1, 1, 1})
	f("χ² new category", stat, math.Inf(1), 0)
	f("χ² new category: p", p, 0, 0)
	_, p = ChiSquare([]float64{5, 0}, []float64{3, 0})
	f("χ² one category: p", p, math.NaN(), 0)
	stat, p = ChiSquare([]float64{1, -1}, []float64{1, 1})
	f("χ² negative count", stat, math.NaN(), 0)
	f("χ² negative count: p", p, math.NaN(), 0)

	f("Q(1, 2.5)", gammaQ(1, 2.5), math.Exp(-2.5), 1e-16)
	f("Q(½, 3)", gammaQ(0.5, 3), math.Erfc(math.Sqrt(3)), 1e-16)
	f("χ² sf at 0", ChiSquareSF(0, 4), 1, 0)
	f("χ² sf df 0", ChiSquareSF(1, 0), math.NaN(), 0)
}

// driftSamples returns n normal values with mean mu from a fixed seed.
func driftSamples(seed uint64, n int, mu float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	x := make([]float64, n)
	for i := range x {
		x[i] = mu + r.NormFloat64()
	}
	return x
}

func TestDriftAllocs(t *testing.T) {
	ref, cur := driftSamples(1, 3000, 0), driftSamples(2, 2000, 0.1)
	big, small := driftSamples(3, 12000, 0), driftSamples(4, 40, 0.3)
	var s KSScratch
	s.KS(ref, cur)
	s.KS(big, small)
	if a := testing.AllocsPerRun(20, func() { s.KS(ref, cur) }); a != 0 {
		t.Errorf("KSScratch.KS (exact) allocates %v times per call", a)
	}
	if a := testing.AllocsPerRun(20, func() { s.KS(big, small) }); a != 0 {
		t.Errorf("KSScratch.KS (asymptotic) allocates %v times per call", a)
	}
	slices.Sort(ref)
	slices.Sort(cur)
	if a := testing.AllocsPerRun(20, func() { WassersteinSorted(ref, cur) }); a != 0 {
		t.Errorf("WassersteinSorted allocates %v times per call", a)
	}
	e, o := []float64{0.1, 0.2, 0.3, 0.4}, []float64{0.25, 0.25, 0.25, 0.25}
	if a := testing.AllocsPerRun(20, func() { JensenShannon(e, o); ChiSquare(e, o) }); a != 0 {
		t.Errorf("JensenShannon and ChiSquare allocate %v times per call", a)
	}
}

func BenchmarkKS(b *testing.B) {
	for _, c := range []struct {
		name   string
		n1, n2 int
		shift  float64
	}{
		{"exact/200x100", 200, 100, 0.2},
		{"exact/1000x1000", 1000, 1000, 0.1},
		{"exact/10000x5000", 10000, 5000, 0.05},
		{"asymp/20000x12000", 20000, 12000, 0},
		{"asymp/20000x12000/shift", 20000, 12000, 0.05},
	} {
		ref, cur := driftSamples(1, c.n1, 0), driftSamples(2, c.n2, c.shift)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				KS(ref, cur)
			}
		})
		b.Run(c.name+"/scratch", func(b *testing.B) {
			var s KSScratch
			b.ReportAllocs()
			for b.Loop() {
				s.KS(ref, cur)
			}
		})
		sref, scur := slices.Sorted(slices.Values(ref)), slices.Sorted(slices.Values(cur))
		b.Run(c.name+"/sorted", func(b *testing.B) {
			var s KSScratch
			b.ReportAllocs()
			for b.Loop() {
				s.KSSorted(sref, scur)
			}
		})
	}
}

func BenchmarkWasserstein(b *testing.B) {
	ref, cur := driftSamples(1, 10000, 0), driftSamples(2, 5000, 0.05)
	b.Run("10000x5000", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Wasserstein(ref, cur)
		}
	})
	sref, scur := slices.Sorted(slices.Values(ref)), slices.Sorted(slices.Values(cur))
	b.Run("10000x5000/sorted", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			WassersteinSorted(sref, scur)
		}
	})
}

func BenchmarkJensenShannon(b *testing.B) {
	p := []float64{0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1}
	q := []float64{0.05, 0.08, 0.1, 0.12, 0.1, 0.1, 0.1, 0.12, 0.1, 0.13}
	b.ReportAllocs()
	for b.Loop() {
		JensenShannon(p, q)
	}
}

func BenchmarkChiSquare(b *testing.B) {
	e := []float64{500, 800, 1000, 1200, 1000, 1000, 1000, 1200, 1000, 1300}
	o := []float64{50, 80, 100, 120, 100, 100, 100, 120, 100, 130}
	o[0] += 20
	b.ReportAllocs()
	for b.Loop() {
		ChiSquare(e, o)
	}
}
