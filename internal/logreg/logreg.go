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

// problem is one training run over the rows of X. The standardised design
// matrix is never stored (for a million rows it would be a quarter of a
// gigabyte to allocate and fault in on every Train): each pass centres the
// rows, c_j = x_j - Mean[j], a chunk at a time and accumulates the
// objective's gradient and Hessian with respect to the centred features.
// Since z_j = c_j / Std[j], the standardised-space ones follow by dividing
// entry (a, b) by Std_a·Std_b (Std_0 = 1 for the intercept), and the linear
// score is θ_0 + Σ_j (θ_j / Std[j])·c_j. This is the same objective with
// the same Newton iterates as on a stored z; only rounding differs (the
// trained parameters move by ~1e-16).
type problem struct {
	n, d, dim int // rows; features; parameters (d + 1)
	// pad is dim + 2 rounded up to a multiple of colBlock: the column count
	// of a chunk's buffers and the stride of the Hessian sums, enough for
	// the tiles of hessianChunk and the colBlock-column loops of evaluate to
	// run past dim (into columns that are zero) without a remainder loop.
	pad     int
	X       [][]float64
	y       []float64
	mean    []float64
	std     []float64
	l2      float64
	maxIter int
	tol     float64
	workers int
	parts   []int // row boundaries of the partitions: part k is parts[k]:parts[k+1]
}

// Partitioning: at most maxParts partitions of at least minPartRows rows.
// The partition depends only on n, never on Workers, so sums are combined
// in the same order and training is deterministic. Within a partition,
// rows are taken in chunks of chunkRows (again independent of Workers).
const (
	maxParts    = 64
	minPartRows = 512
	chunkRows   = 64
)

// The Hessian of a chunk is accumulated in register tiles of tileA × tileB
// entries (see hessianChunk); the other per-column loops of evaluate take
// colBlock columns at a time.
const (
	tileA    = 2
	tileB    = 3
	colBlock = 4
)

func newProblem(X [][]float64, y []float64, mean, std []float64, cfg Config) *problem {
	n, d := len(X), len(mean)
	dim := d + 1
	p := &problem{
		n: n, d: d, dim: dim, pad: (dim + 2 + colBlock - 1) / colBlock * colBlock,
		X: X, y: y, mean: mean, std: std,
		l2: cfg.L2, maxIter: cfg.MaxIter, tol: cfg.Tol, workers: cfg.Workers,
	}
	nparts := min(maxParts, max(1, n/minPartRows))
	p.parts = make([]int, nparts+1)
	for k := range p.parts {
		p.parts[k] = k * n / nparts
	}
	return p
}

// nworkers is the number of goroutines run uses for tasks tasks.
func (p *problem) nworkers(tasks int) int { return max(1, min(p.workers, tasks)) }

// run calls f(w, k) for k in [0, tasks) on p.nworkers(tasks) goroutines; w
// is the calling goroutine's index, so f may use per-worker buffers.
func (p *problem) run(tasks int, f func(w, k int)) {
	nw := p.nworkers(tasks)
	if nw == 1 {
		for k := range tasks {
			f(0, k)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range nw {
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= tasks {
					return
				}
				f(w, k)
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

func newEval(dim int) *eval {
	return &eval{g: make([]float64, dim), h: make([]float64, dim*dim)}
}

// workspace holds evaluate's buffers, allocated once per Train.
type workspace struct {
	tz   []float64 // pad: θ in centred space, θ_0 then θ_j / Std[j], then zeros
	sums []float64 // per partition: f, pad gradient sums, pad × pad Hessian sums
	// Per worker, a chunk of centred rows (cc) and the same scaled by the
	// Hessian weights p_i (1 - p_i) (uc), column-major: column a (a < pad)
	// of row r is at a*chunkRows + r. In cc, column 0 is all ones (the
	// intercept) and columns dim to pad-1 are zero; neither is written
	// after newWorkspace. So uc's columns past dim are zero too.
	cc, uc [][]float64
	// Per worker, chunkRows each: linear scores t_i, p_i - y_i and
	// p_i (1 - p_i).
	ts, res, wts [][]float64
}

func (p *problem) sumBlock() int { return 1 + p.pad + p.pad*p.pad }

func (p *problem) newWorkspace() *workspace {
	nparts := len(p.parts) - 1
	nw := p.nworkers(nparts)
	ws := &workspace{
		tz:   make([]float64, p.pad),
		sums: make([]float64, nparts*p.sumBlock()),
		cc:   make([][]float64, nw),
		uc:   make([][]float64, nw),
		ts:   make([][]float64, nw),
		res:  make([][]float64, nw),
		wts:  make([][]float64, nw),
	}
	for w := range nw {
		ws.cc[w] = make([]float64, p.pad*chunkRows)
		for r := range chunkRows {
			ws.cc[w][r] = 1
		}
		ws.uc[w] = make([]float64, p.pad*chunkRows)
		ws.ts[w] = make([]float64, chunkRows)
		ws.res[w] = make([]float64, chunkRows)
		ws.wts[w] = make([]float64, chunkRows)
	}
	return ws
}

// evaluate fills e with J, ∇J and ∇²J at theta.
func (p *problem) evaluate(theta []float64, e *eval, ws *workspace) {
	dim, d, pad := p.dim, p.d, p.pad
	block := p.sumBlock()
	tz := ws.tz
	tz[0] = theta[0]
	for j := range d {
		tz[j+1] = theta[j+1] / p.std[j]
	}
	p.run(len(p.parts)-1, func(w, k int) {
		s := ws.sums[k*block : (k+1)*block]
		clear(s)
		g := s[1 : 1+pad]
		h := s[1+pad:]
		cc, uc, ts, res, wts := ws.cc[w], ws.uc[w], ws.ts[w], ws.res[w], ws.wts[w]
		mean := p.mean[:d]
		var f float64
		for i0, end := p.parts[k], p.parts[k+1]; i0 < end; i0 += chunkRows {
			n := min(chunkRows, end-i0)
			// Centre the chunk's rows into columns 1..d of cc, four rows at
			// a time so that consecutive stores share a cache line.
			r := 0
			for ; r+4 <= n; r += 4 {
				x0 := p.X[i0+r][:d]
				x1 := p.X[i0+r+1][:d]
				x2 := p.X[i0+r+2][:d]
				x3 := p.X[i0+r+3][:d]
				for j, m := range mean {
					col := cc[(j+1)*chunkRows+r:][:4]
					col[0] = x0[j] - m
					col[1] = x1[j] - m
					col[2] = x2[j] - m
					col[3] = x3[j] - m
				}
			}
			for ; r < n; r++ {
				x := p.X[i0+r][:d]
				col := cc[chunkRows+r:]
				for j, v := range x {
					col[j*chunkRows] = v - mean[j]
				}
			}
			// Linear scores t = Σ_a tz_a·c_a (c_0 = 1), four columns at a
			// time; the additions are in the same order as row by row.
			tv := ts[:n]
			clear(tv)
			for a := 0; a < dim; a += colBlock {
				ta := tz[a : a+colBlock]
				c0, c1 := cc[a*chunkRows:][:n], cc[(a+1)*chunkRows:][:n]
				c2, c3 := cc[(a+2)*chunkRows:][:n], cc[(a+3)*chunkRows:][:n]
				for r, t := range tv {
					tv[r] = t + ta[0]*c0[r] + ta[1]*c1[r] + ta[2]*c2[r] + ta[3]*c3[r]
				}
			}
			rv, wv := res[:n], wts[:n]
			for r, t := range tv {
				// Stable sigmoid, its complement and softplus(t) =
				// ln(1+e^t) from one exponential.
				var pr, q, sp float64
				if t >= 0 {
					ex := math.Exp(-t)
					pr, q, sp = 1/(1+ex), ex/(1+ex), t+math.Log1p(ex)
				} else {
					ex := math.Exp(t)
					pr, q, sp = ex/(1+ex), 1/(1+ex), math.Log1p(ex)
				}
				if p.y[i0+r] == 1 {
					f += sp - t
					rv[r] = -q
				} else {
					f += sp
					rv[r] = pr
				}
				wv[r] = pr * q
			}
			// Gradient sums and the weighted copy u = w·c, four columns at
			// a time (columns past dim are zero in cc, so in uc too).
			for a := 0; a < dim; a += colBlock {
				c0, u0 := cc[a*chunkRows:][:n], uc[a*chunkRows:][:n]
				c1, u1 := cc[(a+1)*chunkRows:][:n], uc[(a+1)*chunkRows:][:n]
				c2, u2 := cc[(a+2)*chunkRows:][:n], uc[(a+2)*chunkRows:][:n]
				c3, u3 := cc[(a+3)*chunkRows:][:n], uc[(a+3)*chunkRows:][:n]
				var g0, g1, g2, g3 float64
				for r, wr := range wv {
					rr := rv[r]
					c := c0[r]
					u0[r] = wr * c
					g0 += rr * c
					c = c1[r]
					u1[r] = wr * c
					g1 += rr * c
					c = c2[r]
					u2[r] = wr * c
					g2 += rr * c
					c = c3[r]
					u3[r] = wr * c
					g3 += rr * c
				}
				ga := g[a : a+colBlock]
				ga[0] += g0
				ga[1] += g1
				ga[2] += g2
				ga[3] += g3
			}
			hessianChunk(h, uc, cc, dim, pad, n)
		}
		s[0] = f
	})

	e.f = 0
	clear(e.g)
	clear(e.h)
	for k := range len(p.parts) - 1 {
		s := ws.sums[k*block : (k+1)*block]
		e.f += s[0]
		for a, v := range s[1 : 1+dim] {
			e.g[a] += v
		}
		h := s[1+pad:]
		for a := range dim {
			for b := a; b < dim; b++ {
				e.h[a*dim+b] += h[a*pad+b]
			}
		}
	}
	// Back to standardised space: divide by Std_a (gradient) and Std_a·Std_b
	// (Hessian), with Std_0 = 1. Then mirror the upper triangle and add the
	// penalty on the weights (not the intercept, index 0).
	scale := func(a int) float64 {
		if a == 0 {
			return 1
		}
		return p.std[a-1]
	}
	for a := 1; a < dim; a++ {
		e.g[a] /= scale(a)
	}
	for a := range dim {
		for b := a; b < dim; b++ {
			if a > 0 || b > 0 {
				e.h[a*dim+b] /= scale(a) * scale(b)
			}
		}
	}
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

// hessianChunk adds Σ_{r<n} uc[a][r]·cc[b][r] to h[a*pad+b] (column x of
// a chunk buffer is [x*chunkRows, x*chunkRows+n)) for every a < dim and
// dim > b ≥ a. It works in register tiles of tileA × tileB = 2 × 3
// entries, each a pass over the chunk's n rows with 6 running sums held in
// registers: 5 loads and no store per 6 multiply-adds (a 4-row-at-a-time
// symmetric rank-1 update into h makes 1.5 memory accesses per
// multiply-add). Larger tiles run out of the 15 SSE registers Go allocates
// on amd64, and a spilled running sum is a dependency chain through memory
// (2×4 measured 30% slower than 2×3). Tiles straddling the diagonal also
// fill a few entries below it, and the last ones columns up to dim+1 (zero
// padding); neither is ever read.
func hessianChunk(h, uc, cc []float64, dim, pad, n int) {
	for a := 0; a < dim; a += tileA {
		u0 := uc[a*chunkRows:][:n]
		u1 := uc[(a+1)*chunkRows:][:n]
		h0 := h[a*pad : (a+1)*pad]
		h1 := h[(a+1)*pad : (a+2)*pad]
		for b := a / tileB * tileB; b < dim; b += tileB {
			c0 := cc[b*chunkRows:][:n]
			c1 := cc[(b+1)*chunkRows:][:n]
			c2 := cc[(b+2)*chunkRows:][:n]
			var s00, s01, s02, s10, s11, s12 float64
			for r, x0 := range u0 {
				x1 := u1[r]
				y0, y1, y2 := c0[r], c1[r], c2[r]
				s00 += x0 * y0
				s01 += x0 * y1
				s02 += x0 * y2
				s10 += x1 * y0
				s11 += x1 * y1
				s12 += x1 * y2
			}
			t0, t1 := h0[b:b+tileB], h1[b:b+tileB]
			t0[0] += s00
			t0[1] += s01
			t0[2] += s02
			t1[0] += s10
			t1[1] += s11
			t1[2] += s12
		}
	}
}

// newton runs damped Newton from θ = 0 and returns θ = (bias, weights...),
// the number of iterations and nil or an ErrNotConverged error.
func (p *problem) newton() ([]float64, int, error) {
	dim := p.dim
	ws := p.newWorkspace()
	theta := make([]float64, dim)
	trial := make([]float64, dim)
	step := make([]float64, dim)
	chol := make([]float64, dim*dim)
	cur, next := newEval(dim), newEval(dim)
	p.evaluate(theta, cur, ws)

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
			p.evaluate(trial, next, ws)
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
