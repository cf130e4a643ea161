package logreg

import (
	"math"
	"math/rand/v2"
	"testing"
)

// naiveEval computes J, ∇J and ∇²J at theta directly on the standardised
// rows, the definition evaluate must match whatever its chunking, tiling
// and padding.
func naiveEval(X [][]float64, y, mean, std, theta []float64, l2 float64) (f float64, g, h []float64) {
	dim := len(theta)
	g = make([]float64, dim)
	h = make([]float64, dim*dim)
	z := make([]float64, dim)
	for i, row := range X {
		z[0] = 1
		for j, v := range row {
			z[j+1] = (v - mean[j]) / std[j]
		}
		var t float64
		for j := range z {
			t += theta[j] * z[j]
		}
		pr := 1 / (1 + math.Exp(-t))
		f += math.Log1p(math.Exp(-math.Abs(t))) + math.Max(t, 0) - y[i]*t
		for a := range dim {
			g[a] += (pr - y[i]) * z[a]
			for b := range dim {
				h[a*dim+b] += pr * (1 - pr) * z[a] * z[b]
			}
		}
	}
	for j := 1; j < dim; j++ {
		f += 0.5 * l2 * theta[j] * theta[j]
		g[j] += l2 * theta[j]
		h[j*dim+j] += l2
	}
	return f, g, h
}

func TestEvaluateMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 2))
	// Feature counts around every padding and tile boundary; row counts
	// that are not multiples of the chunk (and, for 1537, several
	// partitions with a short last chunk).
	for _, d := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 15, 29, 30, 31, 33} {
		for _, n := range []int{1, 5, 64, 67, 1537} {
			X := make([][]float64, n)
			y := make([]float64, n)
			for i := range X {
				X[i] = make([]float64, d)
				for j := range X[i] {
					X[i][j] = float64(j+1)*10 + float64(j%3+1)*r.NormFloat64()
				}
				y[i] = float64(r.IntN(2))
			}
			mean, std := make([]float64, d), make([]float64, d)
			standardisation(X, mean, std)
			theta := make([]float64, d+1)
			for j := range theta {
				theta[j] = r.NormFloat64()
			}
			wf, wg, wh := naiveEval(X, y, mean, std, theta, 0.7)
			for _, workers := range []int{1, 3} {
				p := newProblem(X, y, mean, std, Config{L2: 0.7, Workers: workers})
				e := newEval(p.dim)
				p.evaluate(theta, e, p.newWorkspace())
				near := func(got, want float64) bool {
					return math.Abs(got-want) <= 1e-12*math.Max(1, math.Abs(want))
				}
				if !near(e.f, wf) {
					t.Errorf("d=%d n=%d: f = %.17g, want %.17g", d, n, e.f, wf)
				}
				for a := range p.dim {
					if !near(e.g[a], wg[a]) {
						t.Errorf("d=%d n=%d: g[%d] = %.17g, want %.17g", d, n, a, e.g[a], wg[a])
					}
					for b := range p.dim {
						if !near(e.h[a*p.dim+b], wh[a*p.dim+b]) {
							t.Errorf("d=%d n=%d: h[%d][%d] = %.17g, want %.17g", d, n, a, b, e.h[a*p.dim+b], wh[a*p.dim+b])
						}
					}
				}
			}
		}
	}
}
