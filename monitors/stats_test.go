package monitors

import (
	"math"
	"testing"
)

// Reference values marked "sklearn" were produced with scikit-learn 1.2.1
// and SciPy 1.10.1 (Debian bookworm python3-sklearn / python3-scipy) by the
// /usr/bin/python3 expressions quoted beside them.

func approx(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

func TestPSI(t *testing.T) {
	for _, c := range []struct {
		name       string
		e, a       []float64
		want       float64
		provenance string
	}{
		{"identical", []float64{0.1, 0.2, 0.3, 0.4}, []float64{0.1, 0.2, 0.3, 0.4}, 0, "by definition"},
		{"identical with empty bin", []float64{0.5, 0, 0.5}, []float64{0.5, 0, 0.5}, 0, "by definition"},
		// By hand: 0.15·ln 2.5 + 0.05·ln 1.25 - 0.05·ln(0.25/0.3) - 0.15·ln(0.25/0.4)
		{"uniform vs skewed", []float64{0.1, 0.2, 0.3, 0.4}, []float64{0.25, 0.25, 0.25, 0.25}, 0.22821740957339182,
			"numpy: e=np.maximum(e,1e-4); a=np.maximum(a,1e-4); np.sum((a-e)*np.log(a/e))"},
		// The empty expected bin is floored at 1e-4; by hand:
		// 2·(-0.1)·ln(0.4/0.5) + (0.2-1e-4)·ln(0.2/1e-4)
		{"empty expected bin", []float64{0.5, 0.5, 0}, []float64{0.4, 0.4, 0.2}, 1.5640491119253044,
			"numpy, as above"},
		{"swap", []float64{0.3, 0.7}, []float64{0.7, 0.3}, 0.6778382883097629, "numpy, as above; = 0.8·ln(7/3)"},
	} {
		if got := PSI(c.e, c.a); !approx(got, c.want, 1e-12) {
			t.Errorf("%s: PSI = %.17g, want %.17g (%s)", c.name, got, c.want, c.provenance)
		}
		// PSI is symmetric in its arguments.
		if got := PSI(c.a, c.e); !approx(got, c.want, 1e-12) {
			t.Errorf("%s: PSI reversed = %.17g, want %.17g", c.name, got, c.want)
		}
	}
	if hand := 0.8 * math.Log(7.0/3); !approx(PSI([]float64{0.3, 0.7}, []float64{0.7, 0.3}), hand, 1e-14) {
		t.Errorf("swap: PSI != 0.8·ln(7/3) = %v", hand)
	}
	if !math.IsNaN(PSI([]float64{0.5, 0.5}, []float64{1})) {
		t.Error("PSI of different lengths is not NaN")
	}
	if !math.IsNaN(PSI([]float64{0.5, 0.5}, []float64{math.NaN(), 0.5})) {
		t.Error("PSI with a NaN fraction is not NaN")
	}
}
