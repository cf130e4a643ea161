package logreg

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/driftline/driftline/schemas"
)

// synth draws n rows of d features, feature j ~ N(mu_j, s_j²), and labels
// from the logistic model logit = b + Σ beta_j x_j (raw feature space).
func synth(seed uint64, n int, mu, s, beta []float64, b float64) ([][]float64, []float64) {
	r := rand.New(rand.NewPCG(seed, 1))
	X := make([][]float64, n)
	y := make([]float64, n)
	for i := range X {
		row := make([]float64, len(mu))
		t := b
		for j := range row {
			row[j] = mu[j] + s[j]*r.NormFloat64()
			t += beta[j] * row[j]
		}
		X[i] = row
		if r.Float64() < 1/(1+math.Exp(-t)) {
			y[i] = 1
		}
	}
	return X, y
}

// gradient is an independent computation of ∇J / n at a model's parameters.
func gradient(m *Model, X [][]float64, y []float64) []float64 {
	d := len(m.Weights)
	g := make([]float64, d+1)
	for i, row := range X {
		z := make([]float64, d)
		t := m.Bias
		for j := range z {
			z[j] = (row[j] - m.Mean[j]) / m.Std[j]
			t += m.Weights[j] * z[j]
		}
		r := 1/(1+math.Exp(-t)) - y[i]
		g[0] += r
		for j := range z {
			g[j+1] += r * z[j]
		}
	}
	for j := range d {
		g[j+1] += m.L2 * m.Weights[j]
	}
	for j := range g {
		g[j] /= float64(len(X))
	}
	return g
}

func TestRecoversKnownWeights(t *testing.T) {
	mu := []float64{0, 10, -3, 100, 0.5}
	s := []float64{1, 3, 0.5, 20, 2}
	beta := []float64{1.0, -0.4, 2.0, 0.02, 0}
	const b = 8.5 // mean logit ≈ 0.5: balanced classes
	X, y := synth(1, 40000, mu, s, beta, b)
	m, err := Train(Config{}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if m.Iterations == 0 || m.Iterations > 20 {
		t.Errorf("Iterations = %d, want a handful", m.Iterations)
	}
	// In standardised space the true weights are beta_j*s_j (s_j ≈ Std_j);
	// with 40k rows their standard errors are ≈ 0.01.
	rawBias := m.Bias
	for j := range beta {
		if got, want := m.Weights[j], beta[j]*s[j]; math.Abs(got-want) > 0.05 {
			t.Errorf("w[%d] = %.4f, want ≈ %.4f", j, got, want)
		}
		if math.Abs(m.Mean[j]-mu[j]) > 0.05*s[j] || math.Abs(m.Std[j]-s[j]) > 0.05*s[j] {
			t.Errorf("feature %d: mean %.3f std %.3f, want ≈ %.3f, %.3f", j, m.Mean[j], m.Std[j], mu[j], s[j])
		}
		rawBias -= m.Weights[j] * m.Mean[j] / m.Std[j]
	}
	t.Logf("weights %.4f bias %.4f raw bias %.4f", m.Weights, m.Bias, rawBias)
	if math.Abs(rawBias-b) > 0.3 {
		t.Errorf("raw bias = %.4f, want ≈ %.4f", rawBias, b)
	}
}

func TestGradientZeroAtOptimum(t *testing.T) {
	X, y := synth(2, 5000, []float64{1, 2, 3}, []float64{1, 0.1, 10}, []float64{0.5, 5, -0.1}, -1)
	for _, l2 := range []float64{1e-6, 1, 100} {
		m, err := Train(Config{L2: l2}, X, y)
		if err != nil {
			t.Fatal(err)
		}
		for j, v := range gradient(m, X, y) {
			if math.Abs(v) > 1e-9 {
				t.Errorf("L2=%g: mean gradient[%d] = %g, want ~0", l2, j, v)
			}
		}
	}
}

// gradientDescent is a deliberately naive, independent fit of the
// documented objective: its own standardisation, plain full-batch gradient
// descent with step 1/L, L an upper bound of the Hessian's largest
// eigenvalue.
func gradientDescent(X [][]float64, y []float64, l2 float64) (bias float64, w []float64) {
	n, d := len(X), len(X[0])
	Z := make([][]float64, n)
	for i := range Z {
		Z[i] = make([]float64, d)
	}
	for j := range d {
		var mean, ss float64
		for i := range X {
			mean += X[i][j]
		}
		mean /= float64(n)
		for i := range X {
			ss += (X[i][j] - mean) * (X[i][j] - mean)
		}
		std := math.Sqrt(ss / float64(n))
		for i := range X {
			Z[i][j] = (X[i][j] - mean) / std
		}
	}
	L := l2 + 0.25*float64(n*(d+1)) // ¼‖[1 Z]‖_F² ≥ ¼ λmax(AᵀA)
	w = make([]float64, d)
	gw := make([]float64, d)
	for range 2000000 {
		var gb, gmax float64
		clear(gw)
		for i, z := range Z {
			t := bias
			for j := range z {
				t += w[j] * z[j]
			}
			r := 1/(1+math.Exp(-t)) - y[i]
			gb += r
			for j := range z {
				gw[j] += r * z[j]
			}
		}
		bias -= gb / L
		gmax = math.Abs(gb)
		for j := range w {
			gw[j] += l2 * w[j]
			gmax = math.Max(gmax, math.Abs(gw[j]))
			w[j] -= gw[j] / L
		}
		if gmax < 1e-11 {
			break
		}
	}
	return bias, w
}

func TestAgreesWithGradientDescent(t *testing.T) {
	X, y := synth(3, 200, []float64{0, 5, -1}, []float64{1, 2, 0.3}, []float64{1.5, -0.5, 2}, 0)
	for _, l2 := range []float64{1, 0.1, 10} {
		m, err := Train(Config{L2: l2}, X, y)
		if err != nil {
			t.Fatal(err)
		}
		bias, w := gradientDescent(X, y, l2)
		if math.Abs(m.Bias-bias) > 1e-6 {
			t.Errorf("L2=%g: bias %.8f, gradient descent %.8f", l2, m.Bias, bias)
		}
		for j := range w {
			if math.Abs(m.Weights[j]-w[j]) > 1e-6 {
				t.Errorf("L2=%g: w[%d] %.8f, gradient descent %.8f", l2, j, m.Weights[j], w[j])
			}
		}
	}
}

// skX and skY are a small fixed data set; the reference coefficients below
// were produced with scikit-learn 1.2.1 (Debian python3-sklearn) by
//
//	Z = StandardScaler().fit_transform(X)
//	LogisticRegression(C=C, penalty="l2", solver="newton-cg",
//	                   tol=1e-10, max_iter=10000).fit(Z, y)
//
// (script: rng = np.random.default_rng(7); X = np.round(rng.normal(size=
// (30,3))*[1,3,0.5]+[0,10,-2], 2); labels from a noisy linear rule). A
// plain numpy Newton iteration on the documented objective agrees with them
// to 3e-9.
var (
	skX = [][]float64{
		{0.0, 10.9, -2.14}, {-0.89, 8.64, -2.5}, {0.06, 14.02, -2.25},
		{-0.62, 11.47, -1.82}, {0.11, 7.21, -2.01}, {0.7, 5.97, -2.23},
		{-1.9, 6.13, -2.92}, {-0.24, 6.2, -1.86}, {0.16, 9.44, -3.26},
		{-0.54, 9.85, -1.94}, {-1.53, 8.57, -2.49}, {-0.81, 13.18, -2.4},
		{-0.03, 12.65, -2.29}, {-0.11, 10.33, -1.97}, {-1.23, 10.23, -1.32},
		{-1.55, 12.58, -1.94}, {-0.64, 16.0, -1.62}, {-1.2, 10.22, -1.71},
		{-0.19, 12.05, -2.03}, {0.67, 14.32, -2.34}, {0.2, 8.61, -1.94},
		{-1.19, 8.26, -2.1}, {0.9, 13.44, -2.66}, {-0.79, 11.94, -3.0},
		{-0.46, 9.71, -1.37}, {0.69, 9.02, -2.18}, {-0.25, 14.57, -2.21},
		{-0.3, 11.06, -2.06}, {-0.2, 6.66, -2.01}, {-0.44, 13.5, -1.67},
	}
	skY = []float64{0, 0, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0}
)

func TestMatchesScikitLearn(t *testing.T) {
	for _, c := range []struct {
		C    float64
		bias float64
		w    []float64
	}{
		{1.0, -1.5338980924804815, []float64{0.8092913013062424, -1.3083868047952727, 1.0476199135208872}},
		{0.25, -1.1980926757347128, []float64{0.4446639394351776, -0.761958866478564, 0.5505179596555448}},
	} {
		m, err := Train(Config{L2: 1 / c.C}, skX, skY)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(m.Bias-c.bias) > 1e-7 {
			t.Errorf("C=%g: bias %.10f, scikit-learn %.10f", c.C, m.Bias, c.bias)
		}
		for j := range c.w {
			if math.Abs(m.Weights[j]-c.w[j]) > 1e-7 {
				t.Errorf("C=%g: w[%d] %.10f, scikit-learn %.10f", c.C, j, m.Weights[j], c.w[j])
			}
		}
	}
}

func TestDeterministicAcrossWorkers(t *testing.T) {
	X, y := synth(4, 20000, []float64{0, 1, 2, 3}, []float64{1, 1, 1, 1}, []float64{1, -1, 0.5, 0}, 0)
	ref, err := Train(Config{Workers: 1}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{2, 3, 16} {
		m, err := Train(Config{Workers: w}, X, y)
		if err != nil {
			t.Fatal(err)
		}
		if m.Bias != ref.Bias {
			t.Errorf("Workers=%d: bias %v != %v", w, m.Bias, ref.Bias)
		}
		for j := range m.Weights {
			if m.Weights[j] != ref.Weights[j] {
				t.Errorf("Workers=%d: w[%d] %v != %v", w, j, m.Weights[j], ref.Weights[j])
			}
		}
	}
}

func TestConstantFeature(t *testing.T) {
	X, y := synth(5, 1000, []float64{0, 0}, []float64{1, 1}, []float64{1, 1}, 0)
	for _, row := range X {
		row[1] = 7
	}
	m, err := Train(Config{}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if m.Std[1] != 1 || m.Mean[1] != 7 || m.Weights[1] != 0 {
		t.Errorf("constant feature: mean %v std %v weight %v, want 7, 1, 0", m.Mean[1], m.Std[1], m.Weights[1])
	}
	if p := m.Predict([]float64{0, 1e6}); math.IsNaN(p) {
		t.Errorf("Predict = NaN")
	}
}

func TestSeparable(t *testing.T) {
	X := [][]float64{{-3}, {-2}, {-1}, {1}, {2}, {3}}
	y := []float64{0, 0, 0, 1, 1, 1}
	m, err := Train(Config{L2: 1e-3}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Predict([]float64{3}); p < 0.999 {
		t.Errorf("Predict(3) = %v, want ≈ 1", p)
	}
	if p := m.Predict([]float64{-3}); p > 0.001 {
		t.Errorf("Predict(-3) = %v, want ≈ 0", p)
	}
}

func TestInterceptOnly(t *testing.T) {
	X := [][]float64{{}, {}, {}, {}}
	y := []float64{1, 0, 0, 0}
	m, err := Train(Config{}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if p := m.Predict(nil); math.Abs(p-0.25) > 1e-12 {
		t.Errorf("Predict = %v, want 0.25 (base rate)", p)
	}
}

func TestTrainErrors(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		name string
		cfg  Config
		X    [][]float64
		y    []float64
		want error
	}{
		{"empty", Config{}, nil, nil, ErrEmpty},
		{"label count", Config{}, [][]float64{{1}, {2}}, []float64{0}, ErrShape},
		{"ragged", Config{}, [][]float64{{1, 2}, {2}}, []float64{0, 1}, ErrShape},
		{"single class 0", Config{}, [][]float64{{1}, {2}}, []float64{0, 0}, ErrSingleClass},
		{"single class 1", Config{}, [][]float64{{1}, {2}}, []float64{1, 1}, ErrSingleClass},
		{"NaN X", Config{}, [][]float64{{1}, {nan}}, []float64{0, 1}, ErrNonFinite},
		{"Inf X", Config{}, [][]float64{{math.Inf(1)}, {1}}, []float64{0, 1}, ErrNonFinite},
		{"NaN y", Config{}, [][]float64{{1}, {2}}, []float64{0, nan}, ErrNonFinite},
		{"label 2", Config{}, [][]float64{{1}, {2}}, []float64{0, 2}, ErrLabel},
		{"negative L2", Config{L2: -1}, [][]float64{{1}, {2}}, []float64{0, 1}, ErrConfig},
		{"NaN L2", Config{L2: nan}, [][]float64{{1}, {2}}, []float64{0, 1}, ErrConfig},
		{"negative Tol", Config{Tol: -1}, [][]float64{{1}, {2}}, []float64{0, 1}, ErrConfig},
	} {
		m, err := Train(c.cfg, c.X, c.y)
		if !errors.Is(err, c.want) || m != nil {
			t.Errorf("%s: Train = %v, %v; want nil, %v", c.name, m, err, c.want)
		}
	}
}

func TestNotConverged(t *testing.T) {
	X, y := synth(6, 1000, []float64{0}, []float64{1}, []float64{2}, 0)
	m, err := Train(Config{MaxIter: 1}, X, y)
	if !errors.Is(err, ErrNotConverged) || m == nil || m.Iterations != 1 {
		t.Fatalf("Train(MaxIter 1) = %+v, %v; want a model and ErrNotConverged", m, err)
	}
}

func TestPredictZeroAllocs(t *testing.T) {
	m := &Model{Weights: []float64{1, 2, 3}, Bias: 0.5, Mean: []float64{0, 1, 2}, Std: []float64{1, 2, 3}}
	x := []float64{1, 1, 1}
	var sink float64
	if a := testing.AllocsPerRun(1000, func() { sink += m.Predict(x) }); a != 0 {
		t.Errorf("Predict allocates %v times", a)
	}
	// 0.5 + 1*1 + 2*0 + 3*(-1/3) = 0.5
	if got, want := m.Predict(x), 1/(1+math.Exp(-0.5)); math.Abs(got-want) > 1e-15 {
		t.Errorf("Predict = %v, want %v", got, want)
	}
	if p := (&Model{Bias: -1000}).Predict(nil); p != 0 || math.IsNaN(p) {
		t.Errorf("Predict(bias -1000) = %v, want 0", p)
	}
	if p := (&Model{Bias: 1000}).Predict(nil); p != 1 {
		t.Errorf("Predict(bias 1000) = %v, want 1", p)
	}
}

func TestVersionRoundTrip(t *testing.T) {
	X, y := synth(7, 2000, []float64{0, 3}, []float64{1, 2}, []float64{1, -1}, 0)
	m, err := Train(Config{L2: 2}, X, y)
	if err != nil {
		t.Fatal(err)
	}
	v := &schemas.ModelVersion{Model: "m", Version: 3, Features: []string{"a", "b"}}
	m.FillVersion(v)
	if v.L2 != 2 || v.Bias != m.Bias {
		t.Errorf("FillVersion: L2 %v bias %v", v.L2, v.Bias)
	}
	m2, err := ModelFromVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range X[:50] {
		if m.Predict(row) != m2.Predict(row) {
			t.Fatalf("round trip changed Predict(%v)", row)
		}
	}
	v.Weights[0] = 99 // m2 holds copies
	if m2.Weights[0] == 99 || m.Weights[0] == 99 {
		t.Error("ModelFromVersion/FillVersion share slices")
	}

	bad := *v
	bad.Std = []float64{1, 0}
	if _, err := ModelFromVersion(&bad); !errors.Is(err, ErrNonFinite) {
		t.Errorf("zero std: err = %v", err)
	}
	bad = *v
	bad.Features = []string{"a"}
	if _, err := ModelFromVersion(&bad); !errors.Is(err, ErrShape) {
		t.Errorf("feature count: err = %v", err)
	}
	bad = *v
	bad.Bias = math.NaN()
	if _, err := ModelFromVersion(&bad); !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN bias: err = %v", err)
	}
}

func BenchmarkTrain100kx15(b *testing.B) {
	const n, d = 100000, 15
	mu, s, beta := make([]float64, d), make([]float64, d), make([]float64, d)
	for j := range d {
		mu[j], s[j], beta[j] = float64(j), 1+float64(j%4), 0.3*float64(j%5-2)/(1+float64(j%4))
	}
	X, y := synth(8, n, mu, s, beta, -1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Train(Config{}, X, y); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
}
