package profile

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/driftline/driftline/schemas"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-12 }

func checkFractions(t *testing.T, p schemas.FeatureProfile, want []float64) {
	t.Helper()
	if len(p.Fractions) != len(want) {
		t.Fatalf("%s: fractions %v, want %v", p.Name, p.Fractions, want)
	}
	for i := range want {
		if !near(p.Fractions[i], want[i]) {
			t.Fatalf("%s: fractions %v, want %v", p.Name, p.Fractions, want)
		}
	}
}

// invariants checks what every built profile must satisfy.
func invariants(t *testing.T, p schemas.FeatureProfile, bins int) {
	t.Helper()
	if err := Validate(&p); err != nil {
		t.Fatal(err)
	}
	if len(p.Fractions) > max(bins, 1) {
		t.Fatalf("%s: %d bins, asked for %d", p.Name, len(p.Fractions), bins)
	}
	for i, f := range p.Fractions {
		if f == 0 {
			t.Fatalf("%s: bin %d empty (edges %v, fractions %v)", p.Name, i, p.Edges, p.Fractions)
		}
	}
}

func TestIndicator(t *testing.T) {
	p := BuildOne("flag", []float64{0, 1, 0, 0, 1, 0, 0, 0}, 10)
	if !slices.Equal(p.Edges, []float64{0}) || p.Name != "flag" {
		t.Fatalf("edges %v, want [0]", p.Edges)
	}
	checkFractions(t, p, []float64{0.75, 0.25})
}

func TestFewDistinctValues(t *testing.T) {
	var v []float64
	for c := range 5 { // count c appears c+1 times: 15 values
		for range c + 1 {
			v = append(v, float64(c))
		}
	}
	p := BuildOne("count", v, 10)
	if !slices.Equal(p.Edges, []float64{0, 1, 2, 3}) {
		t.Fatalf("edges %v, want [0 1 2 3]", p.Edges)
	}
	checkFractions(t, p, []float64{1. / 15, 2. / 15, 3. / 15, 4. / 15, 5. / 15})

	// Exactly bins distinct values still get one bin each.
	p = BuildOne("five", v, 5)
	if len(p.Edges) != 4 {
		t.Fatalf("bins=5, 5 distinct values: edges %v", p.Edges)
	}
}

func TestQuantiles(t *testing.T) {
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(1000 - i) // 1000 … 1, unsorted input
	}
	orig := slices.Clone(v)
	p := BuildOne("u", v, 10)
	if !slices.Equal(v, orig) {
		t.Fatal("BuildOne modified its input")
	}
	if want := []float64{100, 200, 300, 400, 500, 600, 700, 800, 900}; !slices.Equal(p.Edges, want) {
		t.Fatalf("edges %v, want %v", p.Edges, want)
	}
	for _, f := range p.Fractions {
		if !near(f, 0.1) {
			t.Fatalf("fractions %v, want 0.1 each", p.Fractions)
		}
	}
	// 4 bins of 10 values 1..10: edges at the 3rd, 5th and 8th smallest.
	p = BuildOne("q", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 4)
	if want := []float64{3, 5, 8}; !slices.Equal(p.Edges, want) {
		t.Fatalf("edges %v, want %v", p.Edges, want)
	}
	checkFractions(t, p, []float64{0.3, 0.2, 0.3, 0.2})
}

func TestDuplicateEdgesCollapse(t *testing.T) {
	// 80% zeros, then 20 distinct values: quantile edges 1..7 would all be
	// 0 and collapse into one.
	v := make([]float64, 100)
	for i := range 20 {
		v[80+i] = float64(i + 1)
	}
	p := BuildOne("zeros", v, 10)
	invariants(t, p, 10)
	if want := []float64{0, 10}; !slices.Equal(p.Edges, want) {
		t.Fatalf("edges %v, want %v", p.Edges, want)
	}
	checkFractions(t, p, []float64{0.8, 0.1, 0.1})

	// Mass at the maximum: an edge equal to the max would leave the last
	// bin empty, so it is dropped.
	v = append(make([]float64, 0, 100), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	for len(v) < 100 {
		v = append(v, 99)
	}
	p = BuildOne("top", v, 10)
	invariants(t, p, 10)
	if p.Edges[len(p.Edges)-1] >= 99 {
		t.Fatalf("edges %v reach the maximum", p.Edges)
	}
}

func TestDegenerate(t *testing.T) {
	for _, c := range []struct {
		name string
		v    []float64
	}{
		{"empty", nil},
		{"constant", []float64{3, 3, 3}},
		{"all NaN", []float64{math.NaN(), math.NaN()}},
	} {
		p := BuildOne(c.name, c.v, 10)
		if len(p.Edges) != 0 || !slices.Equal(p.Fractions, []float64{1}) {
			t.Errorf("%s: edges %v fractions %v, want one bin", c.name, p.Edges, p.Fractions)
		}
		if Bin(&p, 1e300) != 0 || Bin(&p, math.NaN()) != 0 {
			t.Errorf("%s: Bin not 0", c.name)
		}
	}
	// bins <= 0 means DefaultBins; bins == 1 is a single bin.
	v := make([]float64, 1000)
	for i := range v {
		v[i] = float64(i)
	}
	if p := BuildOne("d", v, 0); len(p.Fractions) != DefaultBins {
		t.Errorf("bins=0: %d bins, want %d", len(p.Fractions), DefaultBins)
	}
	if p := BuildOne("one", v, 1); len(p.Fractions) != 1 || p.Fractions[0] != 1 {
		t.Errorf("bins=1: %v", p.Fractions)
	}
}

func TestNonFinite(t *testing.T) {
	v := []float64{math.Inf(-1), 0, 1, 0, 1, math.Inf(1), math.NaN(), 0}
	p := BuildOne("nf", v, 10)
	if !slices.Equal(p.Edges, []float64{0}) {
		t.Fatalf("edges %v, want [0]", p.Edges)
	}
	// bin 0: -Inf, 0, 0, 0; bin 1: 1, 1, +Inf, NaN
	checkFractions(t, p, []float64{0.5, 0.5})
	if _, err := json.Marshal(p); err != nil {
		t.Fatalf("profile does not marshal: %v", err)
	}
}

func TestBin(t *testing.T) {
	p := &schemas.FeatureProfile{Edges: []float64{-1, 0, 2.5, 10}}
	for _, c := range []struct {
		x    float64
		want int
	}{
		{math.Inf(-1), 0}, {-5, 0}, {-1, 0}, {-0.5, 1}, {0, 1}, {1e-300, 2},
		{2.5, 2}, {3, 3}, {10, 3}, {10.0000001, 4}, {math.Inf(1), 4}, {math.NaN(), 4},
	} {
		if got := Bin(p, c.x); got != c.want {
			t.Errorf("Bin(%v) = %d, want %d", c.x, got, c.want)
		}
	}
	if got := Bin(&schemas.FeatureProfile{}, 7); got != 0 {
		t.Errorf("Bin(no edges) = %d", got)
	}

	// Against a linear scan on random edges and values.
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		edges := make([]float64, r.IntN(20))
		for i := range edges {
			edges[i] = float64(r.IntN(50))
		}
		slices.Sort(edges)
		edges = slices.Compact(edges)
		p := &schemas.FeatureProfile{Edges: edges}
		for range 50 {
			x := float64(r.IntN(60)) - 5 + 0.5*float64(r.IntN(2))
			want := len(edges)
			for i, e := range edges {
				if x <= e {
					want = i
					break
				}
			}
			if got := Bin(p, x); got != want {
				t.Fatalf("Bin(%v) over %v = %d, want %d", x, edges, got, want)
			}
		}
	}
}

func TestBinZeroAllocs(t *testing.T) {
	p := BuildOne("x", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 10)
	var sink int
	if a := testing.AllocsPerRun(1000, func() { sink += Bin(&p, 6.5) }); a != 0 {
		t.Errorf("Bin allocates %v times", a)
	}
}

func TestRandomInvariants(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := range 300 {
		n := 1 + r.IntN(2000)
		levels := 1 + r.IntN(40) // number of distinct values, roughly
		bins := 1 + r.IntN(15)
		v := make([]float64, n)
		for i := range v {
			switch {
			case r.IntN(3) == 0:
				v[i] = 0 // a heavy point mass
			case trial%2 == 0:
				v[i] = float64(r.IntN(levels))
			default:
				v[i] = r.NormFloat64() * 5
			}
		}
		p := BuildOne("r", v, bins)
		invariants(t, p, bins)
		// Each fraction is the share Bin assigns.
		counts := make([]int, len(p.Fractions))
		for _, x := range v {
			counts[Bin(&p, x)]++
		}
		for i, c := range counts {
			if !near(p.Fractions[i], float64(c)/float64(n)) {
				t.Fatalf("fraction %d = %v, counted %v", i, p.Fractions[i], float64(c)/float64(n))
			}
		}
	}
}

func TestBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	names := []string{"a", "flag", "c"}
	X := make([][]float64, 500)
	for i := range X {
		X[i] = []float64{r.NormFloat64(), float64(r.IntN(2)), float64(r.IntN(100))}
	}
	ps := Build(names, X, 10)
	if len(ps) != 3 {
		t.Fatalf("%d profiles", len(ps))
	}
	for j, p := range ps {
		col := make([]float64, len(X))
		for i := range X {
			col[i] = X[i][j]
		}
		want := BuildOne(names[j], col, 10)
		if p.Name != names[j] || !slices.Equal(p.Edges, want.Edges) || !slices.Equal(p.Fractions, want.Fractions) {
			t.Errorf("column %d: Build %+v, BuildOne %+v", j, p, want)
		}
	}
	if len(ps[1].Fractions) != 2 {
		t.Errorf("indicator column has %d bins", len(ps[1].Fractions))
	}

	scores := make([]float64, len(X))
	for i := range scores {
		scores[i] = r.Float64()
	}
	prof := BuildProfile(names, X, scores, 5)
	if prof.Rows != 500 || len(prof.Features) != 3 || prof.Score.Name != ScoreName || len(prof.Score.Fractions) != 5 {
		t.Errorf("BuildProfile: rows %d, %d features, score %+v", prof.Rows, len(prof.Features), prof.Score)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		p    schemas.FeatureProfile
		ok   bool
	}{
		{"ok", schemas.FeatureProfile{Edges: []float64{1, 2}, Fractions: []float64{0.2, 0.3, 0.5}}, true},
		{"single bin", schemas.FeatureProfile{Fractions: []float64{1}}, true},
		{"count", schemas.FeatureProfile{Edges: []float64{1}, Fractions: []float64{1}}, false},
		{"order", schemas.FeatureProfile{Edges: []float64{2, 2}, Fractions: []float64{0.2, 0.3, 0.5}}, false},
		{"NaN edge", schemas.FeatureProfile{Edges: []float64{math.NaN()}, Fractions: []float64{0.5, 0.5}}, false},
		{"sum", schemas.FeatureProfile{Edges: []float64{1}, Fractions: []float64{0.5, 0.6}}, false},
		{"negative", schemas.FeatureProfile{Edges: []float64{1}, Fractions: []float64{-0.5, 1.5}}, false},
		{"NaN fraction", schemas.FeatureProfile{Edges: []float64{1}, Fractions: []float64{math.NaN(), 1}}, false},
	} {
		if err := Validate(&c.p); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
	}
}

func BenchmarkBuild100kx15(b *testing.B) {
	r := rand.New(rand.NewPCG(7, 8))
	names := make([]string, 15)
	X := make([][]float64, 100000)
	for i := range X {
		X[i] = make([]float64, len(names))
		for j := range X[i] {
			X[i][j] = r.NormFloat64()
		}
	}
	for b.Loop() {
		Build(names, X, 10)
	}
}

// The sketch stored with a profile is a DDSketch of the training values:
// its quantiles are within the relative accuracy of the exact ones, it
// survives JSON, and it stays compact enough to travel in every registry
// record.
func TestSketchQuantilesSizeAndJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	v := make([]float64, 50000)
	for i := range v {
		v[i] = 40 * rng.ExpFloat64()
	}
	p := BuildOne("price", v, 10)
	if p.Sketch == nil || p.Distinct != 11 || p.Rows != len(v) || math.Abs(p.Mean-40) > 1 || math.Abs(p.Std-40) > 1.5 {
		t.Fatalf("profile = rows %d distinct %d mean %g std %g sketch %v", p.Rows, p.Distinct, p.Mean, p.Std, p.Sketch != nil)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 6144 {
		t.Errorf("profile of one feature is %d bytes of JSON, want <= 6 KiB", len(b))
	}
	var back schemas.FeatureProfile
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&back); err != nil {
		t.Fatal(err)
	}
	sk, err := Sketch(back.Sketch)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(v)
	slices.Sort(sorted)
	for _, q := range []float64{0.01, 0.25, 0.5, 0.9, 0.99} {
		got, _ := sk.GetValueAtQuantile(q)
		want := sorted[int(q*float64(len(v)-1))]
		if math.Abs(got-want) > 0.0101*want {
			t.Errorf("quantile %g: sketch %g, exact %g (relative accuracy %g)", q, got, want, SketchAccuracy)
		}
	}
	// A categorical feature gets its frequency table and no sketch.
	if c := BuildOne("mobile", []float64{0, 1, 1, 0, 1}, 10); c.Sketch != nil || c.Distinct != 2 {
		t.Errorf("binary feature: distinct %d, sketch %v", c.Distinct, c.Sketch != nil)
	}
	// A registry record written before sketches existed still validates.
	var old schemas.FeatureProfile
	if err := json.Unmarshal([]byte(`{"name":"x","edges":[1,2],"fractions":[0.25,0.5,0.25]}`), &old); err != nil || Validate(&old) != nil || old.Sketch != nil {
		t.Errorf("old profile: %v %v", err, Validate(&old))
	}
}

// A sketch keeps the reference's exact min and max, and a small
// reference's sorted values (at most MaxExactValues, so only small
// training sets pay for them); a larger one keeps only the range.
func TestSketchExactRangeAndValues(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	sample := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = math.Round(40*rng.ExpFloat64()*1000) / 1000
		}
		v[n/2] = math.NaN() // not a value of the sketch
		return v
	}
	// Full precision: 1000 values are about 19 KB of JSON, over
	// MaxExactBytes, so only the range is kept.
	full := make([]float64, MaxExactValues)
	for i := range full {
		full[i] = 40 * rng.ExpFloat64()
	}
	if s := BuildOne("ratio", full, 10).Sketch; s.Values != nil || s.Min == nil {
		t.Errorf("%d full-precision values (~%d B): %d kept, min %v", len(full), jsonBytes(full), len(s.Values), s.Min)
	}
	for _, n := range []int{800, MaxExactValues + 1, MaxExactValues + 2, 50000} {
		v := sample(n)
		p := BuildOne("price", v, 10)
		finite := slices.DeleteFunc(slices.Clone(v), func(x float64) bool { return x != x })
		slices.Sort(finite)
		s := p.Sketch
		if s.Min == nil || s.Max == nil || *s.Min != finite[0] || *s.Max != finite[len(finite)-1] {
			t.Fatalf("n %d: min %v max %v, want %g %g", n, s.Min, s.Max, finite[0], finite[len(finite)-1])
		}
		if keep := len(finite) <= MaxExactValues; keep != (s.Values != nil) || (keep && !slices.Equal(s.Values, finite)) {
			t.Errorf("n %d (%d finite): %d exact values kept", n, len(finite), len(s.Values))
		}
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		// A KS-sized reference at three decimals stays near the 6 KiB a
		// large reference's sketch may take.
		t.Logf("n %d: %d bytes of JSON", n, len(b))
		if n <= MaxExactValues+2 && len(b) > 12<<10 {
			t.Errorf("n %d: profile is %d bytes of JSON", n, len(b))
		}
		var back schemas.FeatureProfile
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if err := Validate(&back); err != nil {
			t.Fatalf("n %d: %v", n, err)
		}
		if !slices.Equal(back.Sketch.Values, s.Values) || *back.Sketch.Min != *s.Min || *back.Sketch.Max != *s.Max {
			t.Errorf("n %d: exact parts do not survive JSON", n)
		}
	}
}

// A registry record written before the sketch kept its range and values
// decodes and validates; inconsistent exact parts are rejected.
func TestValidateExactParts(t *testing.T) {
	old := `{"name":"price","edges":[1,2],"fractions":[0.25,0.25,0.5],"distinct":11,"rows":4,"mean":2,"std":1,` +
		`"sketch":{"mapping":"cubic","relative_accuracy":0.005,"positive":{"offset":0,"counts":[4]},"negative":{"offset":0,"counts":[]}}}`
	var p schemas.FeatureProfile
	if err := json.Unmarshal([]byte(old), &p); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&p); err != nil || p.Sketch.Min != nil || p.Sketch.Values != nil {
		t.Fatalf("old record: %v (min %v, values %v)", err, p.Sketch.Min, p.Sketch.Values)
	}
	f := func(x float64) *float64 { return &x }
	for _, c := range []struct {
		name     string
		min, max *float64
		values   []float64
		ok       bool
	}{
		{"range and values", f(1), f(4), []float64{1, 2, 3, 4}, true},
		{"range only", f(1), f(4), nil, true},
		{"min without max", f(1), nil, nil, false},
		{"min above max", f(5), f(4), nil, false},
		{"infinite max", f(1), f(math.Inf(1)), nil, false},
		{"unsorted", f(1), f(4), []float64{1, 3, 2, 4}, false},
		{"NaN value", nil, nil, []float64{1, 2, math.NaN(), 4}, false},
		{"fewer than counted", f(1), f(3), []float64{1, 2, 3}, false},
		{"outside the range", f(1), f(4), []float64{0, 2, 3, 4}, false},
	} {
		q := p
		sk := *p.Sketch
		sk.Min, sk.Max, sk.Values = c.min, c.max, c.values
		q.Sketch = &sk
		if err := Validate(&q); (err == nil) != c.ok {
			t.Errorf("%s: Validate = %v", c.name, err)
		}
	}
}
