package monitors

import (
	"math"
)

// PSIEpsilon is the floor PSI applies to every bin's fraction, so that a bin
// empty on one side contributes a large but finite term instead of ±Inf.
const PSIEpsilon = 1e-4

// PSI returns the population stability index of actual against expected,
// two distributions over the same bins given as fractions (each normally
// summing to 1):
//
//	PSI = Σ_i (a_i - e_i) · ln(a_i / e_i),   a_i = max(actual[i], ε),
//	                                          e_i = max(expected[i], ε)
//
// with ε = PSIEpsilon = 1e-4; the floored fractions are not renormalised.
// PSI is 0 for identical distributions and grows with the shift; a common
// reading is < 0.1 stable, 0.1–0.25 moderate shift, > 0.25 major shift. It
// returns NaN when the slices differ in length or any fraction is NaN.
func PSI(expected, actual []float64) float64 {
	if len(expected) != len(actual) {
		return math.NaN()
	}
	var psi float64
	for i, e := range expected {
		e = math.Max(e, PSIEpsilon)
		a := math.Max(actual[i], PSIEpsilon)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}
