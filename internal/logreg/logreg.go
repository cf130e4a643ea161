package logreg

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/driftline/driftline/schemas"
)

// Defaults applied by Train to zero-valued Config fields.
const (
	DefaultL2      = 1.0   // scikit-learn's default C = 1
	DefaultMaxIter = 100   // Newton iterations; ~10 are typical
	DefaultTol     = 1e-10 // on max_j |∂J/∂θ_j| / rows
)

// Errors returned by Train (wrapped with detail) and ModelFromVersion.
var (
	ErrEmpty        = errors.New("logreg: no training rows")
	ErrShape        = errors.New("logreg: inconsistent shape")
	ErrNonFinite    = errors.New("logreg: non-finite value")
	ErrLabel        = errors.New("logreg: label not 0 or 1")
	ErrSingleClass  = errors.New("logreg: training labels have a single class")
	ErrConfig       = errors.New("logreg: invalid config")
	ErrNotConverged = errors.New("logreg: did not converge")
)

// Config controls Train. The zero value is valid: every zero field takes its
// default.
type Config struct {
	// L2 is λ, the strength of the penalty (λ/2)·||w||² added to the summed
	// log loss (see the package doc); it equals 1/C of scikit-learn's
	// LogisticRegression. 0 means DefaultL2 (1.0); negative or non-finite
	// values are rejected. For an almost unregularised fit use a tiny
	// positive value such as 1e-9 (separable data then gives huge weights).
	L2 float64
	// MaxIter caps the Newton iterations. 0 means DefaultMaxIter.
	MaxIter int
	// Tol is the convergence threshold on the largest absolute component of
	// the objective's gradient divided by the number of rows (the gradient
	// of the mean loss). 0 means DefaultTol.
	Tol float64
	// Workers is the number of goroutines evaluating row chunks. 0 means
	// runtime.NumCPU(). The result does not depend on it.
	Workers int
}

// Model is a trained logistic regression on standardised inputs:
//
//	Predict(x) = sigmoid(Bias + sum_j Weights[j] * (x[j]-Mean[j]) / Std[j])
//
// Weights, Mean and Std have one entry per feature; Std has no zeros. It is
// the same shape as the model fields of schemas.ModelVersion: see
// ModelFromVersion and FillVersion.
type Model struct {
	Weights []float64 // coefficients on standardised features
	Bias    float64   // intercept (unpenalised)
	Mean    []float64 // training mean per feature
	Std     []float64 // training population std per feature; 1 for constant ones
	L2      float64   // λ the model was trained with (0 if unknown)
	// Iterations is the number of Newton iterations Train ran (0 for a
	// model loaded from a version).
	Iterations int
}

// Predict returns the positive-class probability for the raw (not
// standardised) feature vector x, which must have at least len(m.Weights)
// entries (extra ones are ignored); a NaN in x gives NaN. It does not
// allocate.
func (m *Model) Predict(x []float64) float64 {
	w := m.Weights
	x = x[:len(w)]
	mean := m.Mean[:len(w)]
	std := m.Std[:len(w)]
	t := m.Bias
	for j, wj := range w {
		t += wj * (x[j] - mean[j]) / std[j]
	}
	return sigmoid(t)
}

// ModelFromVersion returns a Model holding a copy of v's weights, bias,
// standardisation and L2. It checks that Weights, Mean, Std and Features
// have the same length, that every value is finite and that every Std is
// positive, so a scorer can reject a malformed registry record up front.
func ModelFromVersion(v *schemas.ModelVersion) (*Model, error) {
	d := len(v.Weights)
	if len(v.Mean) != d || len(v.Std) != d || len(v.Features) != d {
		return nil, fmt.Errorf("%w: version %s/v%d has %d features, %d weights, %d means, %d stds",
			ErrShape, v.Model, v.Version, len(v.Features), d, len(v.Mean), len(v.Std))
	}
	if !finite(v.Bias) {
		return nil, fmt.Errorf("%w: version %s/v%d bias", ErrNonFinite, v.Model, v.Version)
	}
	for j := range d {
		if !finite(v.Weights[j]) || !finite(v.Mean[j]) || !finite(v.Std[j]) || v.Std[j] <= 0 {
			return nil, fmt.Errorf("%w: version %s/v%d feature %d (%s): weight %g mean %g std %g",
				ErrNonFinite, v.Model, v.Version, j, v.Features[j], v.Weights[j], v.Mean[j], v.Std[j])
		}
	}
	return &Model{
		Weights: append([]float64(nil), v.Weights...),
		Bias:    v.Bias,
		Mean:    append([]float64(nil), v.Mean...),
		Std:     append([]float64(nil), v.Std...),
		L2:      v.L2,
	}, nil
}

// FillVersion copies the model's weights, bias, standardisation and L2 into
// v, leaving v's other fields alone.
func (m *Model) FillVersion(v *schemas.ModelVersion) {
	v.Weights = append([]float64(nil), m.Weights...)
	v.Bias = m.Bias
	v.Mean = append([]float64(nil), m.Mean...)
	v.Std = append([]float64(nil), m.Std...)
	v.L2 = m.L2
}

// Train fits a model to the rows of X (one feature vector each, all of the
// same length) and the labels y (0 or 1, both present), minimising the
// objective in the package doc. X and y are not modified.
//
// It returns an error wrapping ErrEmpty, ErrShape, ErrNonFinite (NaN or ±Inf
// anywhere), ErrLabel, ErrSingleClass or ErrConfig for bad input. If the
// iteration limit is reached, or the line search cannot make progress,
// before the gradient is within Tol, it returns the best model found together
// with an error wrapping ErrNotConverged.
func Train(cfg Config, X [][]float64, y []float64) (*Model, error) {
	if cfg.L2 == 0 {
		cfg.L2 = DefaultL2
	}
	if cfg.L2 < 0 || !finite(cfg.L2) {
		return nil, fmt.Errorf("%w: L2 = %g", ErrConfig, cfg.L2)
	}
	if cfg.MaxIter == 0 {
		cfg.MaxIter = DefaultMaxIter
	}
	if cfg.Tol == 0 {
		cfg.Tol = DefaultTol
	}
	if cfg.MaxIter < 0 || cfg.Tol < 0 || !finite(cfg.Tol) {
		return nil, fmt.Errorf("%w: MaxIter = %d, Tol = %g", ErrConfig, cfg.MaxIter, cfg.Tol)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}

	n := len(X)
	if n == 0 {
		return nil, ErrEmpty
	}
	if len(y) != n {
		return nil, fmt.Errorf("%w: %d rows but %d labels", ErrShape, n, len(y))
	}
	d := len(X[0])
	var pos int
	for i, row := range X {
		if len(row) != d {
			return nil, fmt.Errorf("%w: row %d has %d values, row 0 has %d", ErrShape, i, len(row), d)
		}
		for j, v := range row {
			if !finite(v) {
				return nil, fmt.Errorf("%w: X[%d][%d] = %g", ErrNonFinite, i, j, v)
			}
		}
		switch y[i] {
		case 0:
		case 1:
			pos++
		default:
			if math.IsNaN(y[i]) || math.IsInf(y[i], 0) {
				return nil, fmt.Errorf("%w: y[%d] = %g", ErrNonFinite, i, y[i])
			}
			return nil, fmt.Errorf("%w: y[%d] = %g", ErrLabel, i, y[i])
		}
	}
	if pos == 0 || pos == n {
		return nil, fmt.Errorf("%w: %d of %d labels positive", ErrSingleClass, pos, n)
	}

	m := &Model{Mean: make([]float64, d), Std: make([]float64, d), L2: cfg.L2}
	standardisation(X, m.Mean, m.Std)

	p := newProblem(X, y, m.Mean, m.Std, cfg)
	theta, iters, err := p.newton()
	m.Bias = theta[0]
	m.Weights = theta[1:]
	m.Iterations = iters
	return m, err
}

// standardisation sets mean and std to the column means and population
// standard deviations of X (two passes, for accuracy), with std 1 where a
// column is constant.
func standardisation(X [][]float64, mean, std []float64) {
	n := float64(len(X))
	for _, row := range X {
		for j, v := range row {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= n
	}
	for _, row := range X {
		for j, v := range row {
			dv := v - mean[j]
			std[j] += dv * dv
		}
	}
	for j := range std {
		s := math.Sqrt(std[j] / n)
		// A (numerically) constant column standardises to all zeros either
		// way; 1 keeps Predict free of division by zero and keeps its weight
		// at 0.
		if !(s > 1e-12*math.Max(1, math.Abs(mean[j]))) {
			s = 1
		}
		std[j] = s
	}
}

// problem is one training run: the standardised design matrix with a
// leading column of ones, and the partition of its rows.
type problem struct {
	n, dim  int       // rows; parameters (features + 1)
	z       []float64 // n × dim, row-major, z[i*dim] = 1
	y       []float64
	l2      float64
	maxIter int
	tol     float64
	workers int
	parts   []int // row boundaries of the partitions: part k is parts[k]:parts[k+1]
}

// Partitioning: at most maxParts partitions of at least minPartRows rows.
// The partition depends only on n, never on Workers, so sums are combined
// in the same order and training is deterministic.
const (
	maxParts    = 64
	minPartRows = 512
)

func newProblem(X [][]float64, y []float64, mean, std []float64, cfg Config) *problem {
	n, d := len(X), len(mean)
	dim := d + 1
	p := &problem{n: n, dim: dim, y: y, l2: cfg.L2, maxIter: cfg.MaxIter, tol: cfg.Tol, workers: cfg.Workers}
	nparts := min(maxParts, max(1, n/minPartRows))
	p.parts = make([]int, nparts+1)
	for k := range p.parts {
		p.parts[k] = k * n / nparts
	}
	p.z = make([]float64, n*dim)
	p.run(nparts, func(k int) {
		for i := p.parts[k]; i < p.parts[k+1]; i++ {
			zi := p.z[i*dim : (i+1)*dim]
			zi[0] = 1
			for j, v := range X[i] {
				zi[j+1] = (v - mean[j]) / std[j]
			}
		}
	})
	return p
}

// run calls f(k) for k in [0, tasks) on up to p.workers goroutines.
func (p *problem) run(tasks int, f func(k int)) {
	w := min(p.workers, tasks)
	if w <= 1 {
		for k := range tasks {
			f(k)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= tasks {
					return
				}
				f(k)
			}
		})
	}
	wg.Wait()
}

// eval is the objective, its gradient and its Hessian at one point.
type eval struct {
	f    float64
	g    []float64 // dim
	h    []float64 // dim × dim, row-major, full
	gmax float64   // max_j |g_j| / n
}

// evaluate fills e with J, ∇J and ∇²J at theta, using scratch (one
// 1+dim+dim² block per partition) for the partial sums.
func (p *problem) evaluate(theta []float64, e *eval, scratch []float64) {
	dim := p.dim
	block := 1 + dim + dim*dim
	p.run(len(p.parts)-1, func(k int) {
		s := scratch[k*block : (k+1)*block]
		clear(s)
		g := s[1 : 1+dim]
		h := s[1+dim:]
		var f float64
		// Rows are taken in blocks of hb: the Hessian update then reads and
		// writes each entry of h once per block instead of once per row.
		var zs [hb][]float64
		var ws [hb]float64
		nb := 0
		for i := p.parts[k]; i < p.parts[k+1]; i++ {
			zi := p.z[i*dim : (i+1)*dim]
			var t float64
			for j, th := range theta[:dim] {
				t += th * zi[j]
			}
			// Stable sigmoid, its complement and softplus(t) = ln(1+e^t)
			// from one exponential.
			var pr, q, sp float64
			if t >= 0 {
				ex := math.Exp(-t)
				pr, q, sp = 1/(1+ex), ex/(1+ex), t+math.Log1p(ex)
			} else {
				ex := math.Exp(t)
				pr, q, sp = ex/(1+ex), 1/(1+ex), math.Log1p(ex)
			}
			var r float64 // p - y
			if p.y[i] == 1 {
				f += sp - t
				r = -q
			} else {
				f += sp
				r = pr
			}
			for j, v := range zi {
				g[j] += r * v
			}
			zs[nb], ws[nb] = zi, pr*q
			nb++
			if nb == hb {
				hessianBlock(h, dim, &zs, &ws)
				nb = 0
			}
		}
		for b := range nb {
			hessianRow(h, dim, zs[b], ws[b])
		}
		s[0] = f
	})

	e.f = 0
	clear(e.g)
	clear(e.h)
	for k := range len(p.parts) - 1 {
		s := scratch[k*block : (k+1)*block]
		e.f += s[0]
		for j, v := range s[1 : 1+dim] {
			e.g[j] += v
		}
		for j, v := range s[1+dim:] {
			e.h[j] += v
		}
	}
	// Mirror the upper triangle and add the penalty on the weights (not the
	// intercept, index 0).
	for a := range dim {
		for b := a + 1; b < dim; b++ {
			e.h[b*dim+a] = e.h[a*dim+b]
		}
	}
	for j := 1; j < dim; j++ {
		e.f += 0.5 * p.l2 * theta[j] * theta[j]
		e.g[j] += p.l2 * theta[j]
		e.h[j*dim+j] += p.l2
	}
	e.gmax = 0
	for _, v := range e.g {
		e.gmax = math.Max(e.gmax, math.Abs(v))
	}
	e.gmax /= float64(p.n)
}

// hb is the number of rows per Hessian block update.
const hb = 4

// hessianBlock adds Σ_r ws[r]·zs[r]·zs[r]ᵀ to the upper triangle of h.
func hessianBlock(h []float64, dim int, zs *[hb][]float64, ws *[hb]float64) {
	z0, z1, z2, z3 := zs[0][:dim], zs[1][:dim], zs[2][:dim], zs[3][:dim]
	for a := range dim {
		c0, c1, c2, c3 := ws[0]*z0[a], ws[1]*z1[a], ws[2]*z2[a], ws[3]*z3[a]
		row := h[a*dim+a : a*dim+dim]
		n := len(row) // dim - a
		a0, a1, a2, a3 := z0[a:][:n], z1[a:][:n], z2[a:][:n], z3[a:][:n]
		for b := range row {
			row[b] += c0*a0[b] + c1*a1[b] + c2*a2[b] + c3*a3[b]
		}
	}
}

// hessianRow adds w·z·zᵀ to the upper triangle of h.
func hessianRow(h []float64, dim int, z []float64, w float64) {
	for a := range dim {
		sa := w * z[a]
		row := h[a*dim+a : a*dim+dim]
		za := z[a:dim]
		for b := range row {
			row[b] += sa * za[b]
		}
	}
}

func newEval(dim int) *eval {
	return &eval{g: make([]float64, dim), h: make([]float64, dim*dim)}
}

// newton runs damped Newton from θ = 0 and returns θ = (bias, weights...),
// the number of iterations and nil or an ErrNotConverged error.
func (p *problem) newton() ([]float64, int, error) {
	dim := p.dim
	scratch := make([]float64, (len(p.parts)-1)*(1+dim+dim*dim))
	theta := make([]float64, dim)
	trial := make([]float64, dim)
	step := make([]float64, dim)
	chol := make([]float64, dim*dim)
	cur, next := newEval(dim), newEval(dim)
	p.evaluate(theta, cur, scratch)

	for iter := 0; ; iter++ {
		if cur.gmax <= p.tol {
			return theta, iter, nil
		}
		if iter == p.maxIter {
			return theta, iter, fmt.Errorf("%w: %d iterations, gradient %g > tol %g",
				ErrNotConverged, iter, cur.gmax, p.tol)
		}
		newtonStep(cur.h, cur.g, chol, step, dim)
		var slope float64 // directional derivative gᵀΔ (< 0)
		for j := range step {
			slope += cur.g[j] * step[j]
		}
		// Backtracking (Armijo) line search; the full step is almost always
		// taken. The slack of a few ulps of J lets the last iterations,
		// whose true decrease is below rounding, proceed.
		slack := 1e-13 * math.Abs(cur.f)
		accepted := false
		for alpha := 1.0; alpha > 1e-10; alpha /= 2 {
			for j := range theta {
				trial[j] = theta[j] + alpha*step[j]
			}
			p.evaluate(trial, next, scratch)
			if next.f <= cur.f+1e-4*alpha*slope+slack && finite(next.f) {
				accepted = true
				break
			}
		}
		if !accepted {
			return theta, iter, fmt.Errorf("%w: line search failed after %d iterations, gradient %g > tol %g",
				ErrNotConverged, iter, cur.gmax, p.tol)
		}
		copy(theta, trial)
		cur, next = next, cur
	}
}

// newtonStep solves H·step = -g by Cholesky factorisation into chol. H is
// positive definite in exact arithmetic when L2 > 0; should the
// factorisation still fail numerically, a growing multiple of the identity
// is added until it succeeds.
func newtonStep(h, g, chol, step []float64, dim int) {
	var maxDiag float64
	for a := range dim {
		maxDiag = math.Max(maxDiag, h[a*dim+a])
	}
	jitter := 0.0
	for !cholesky(h, chol, dim, jitter) {
		if jitter == 0 {
			jitter = 1e-12 * math.Max(maxDiag, 1)
		} else {
			jitter *= 10
		}
	}
	// Forward then back substitution: L·u = -g, Lᵀ·step = u.
	for a := range dim {
		s := -g[a]
		for b := range a {
			s -= chol[a*dim+b] * step[b]
		}
		step[a] = s / chol[a*dim+a]
	}
	for a := dim - 1; a >= 0; a-- {
		s := step[a]
		for b := a + 1; b < dim; b++ {
			s -= chol[b*dim+a] * step[b]
		}
		step[a] = s / chol[a*dim+a]
	}
}

// cholesky writes the lower-triangular L with L·Lᵀ = H + jitter·I into l
// and reports whether H + jitter·I is (numerically) positive definite.
func cholesky(h, l []float64, dim int, jitter float64) bool {
	clear(l)
	for a := range dim {
		for b := 0; b <= a; b++ {
			s := h[a*dim+b]
			if a == b {
				s += jitter
			}
			for k := range b {
				s -= l[a*dim+k] * l[b*dim+k]
			}
			if a == b {
				if !(s > 0) {
					return false
				}
				l[a*dim+a] = math.Sqrt(s)
			} else {
				l[a*dim+b] = s / l[b*dim+b]
			}
		}
	}
	return true
}

// sigmoid is 1/(1+e^-t), computed without overflow.
func sigmoid(t float64) float64 {
	if t >= 0 {
		return 1 / (1 + math.Exp(-t))
	}
	e := math.Exp(t)
	return e / (1 + e)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
