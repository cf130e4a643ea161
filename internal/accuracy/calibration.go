package accuracy

import "math"

// Brier returns the Brier score of probabilities scores for labels (same
// length; 0 negative, anything else positive): the mean squared error
//
//	Brier = (1/n) Σ_i (p_i - y_i)²,
//
// scikit-learn's brier_score_loss. NaN for empty input, differing lengths
// or a NaN score.
func Brier[L BinaryLabel](scores []float64, labels []L) float64 {
	if len(scores) != len(labels) || len(scores) == 0 {
		return math.NaN()
	}
	var sum float64
	for i, p := range scores {
		y := 0.0
		if labels[i] != 0 {
			y = 1
		}
		sum += (p - y) * (p - y)
	}
	return sum / float64(len(scores))
}

// ECEBins is the number of equal-width probability bins ECE uses.
const ECEBins = 10

// ECE returns the expected calibration error of probabilities scores over
// ECEBins equal-width bins of [0, 1]:
//
//	ECE = Σ_b (n_b / n) · | mean(y in b) - mean(p in b) |
//
// with the bins of scikit-learn's calibration_curve(y, p, n_bins=10,
// strategy='uniform'): bin b holds e_b < p <= e_{b+1} for the edges
// e = np.linspace(0, 1, 11), the first bin also everything at or below
// 0.1 and the last everything above 0.9. It is the bin-weighted mean gap
// between that curve's prob_true and prob_pred. NaN for empty input,
// differing lengths or a NaN score. It does not allocate.
func ECE[L BinaryLabel](scores []float64, labels []L) float64 {
	if len(scores) != len(labels) || len(scores) == 0 {
		return math.NaN()
	}
	var n, sumP, sumY [ECEBins]float64
	for i, p := range scores {
		if math.IsNaN(p) {
			return math.NaN()
		}
		b := eceBin(p)
		n[b]++
		sumP[b] += p
		if labels[i] != 0 {
			sumY[b]++
		}
	}
	var ece float64
	for b := range n {
		if n[b] > 0 {
			ece += math.Abs(sumY[b]-sumP[b]) / float64(len(scores))
		}
	}
	return ece
}

// eceBin is np.searchsorted(np.linspace(0, 1, 11)[1:-1], p): how many
// inner edges lie strictly below p. The edges are i·0.1 as NumPy computes
// them (0.30000000000000004, not 0.3).
func eceBin(p float64) int {
	b := 0
	for i := 1; i < ECEBins; i++ {
		if float64(i)*(1.0/ECEBins) < p {
			b = i
		}
	}
	return b
}

// PrecisionRecall returns the precision and recall of the decision
// "positive when score >= threshold", as scikit-learn's precision_score
// and recall_score of (scores >= threshold). Precision is NaN when nothing
// is predicted positive, recall when no label is positive (scikit-learn
// returns 0 with a warning there).
func PrecisionRecall[L BinaryLabel](scores []float64, labels []L, threshold float64) (precision, recall float64) {
	if len(scores) != len(labels) {
		return math.NaN(), math.NaN()
	}
	var tp, fp, fn float64
	for i, p := range scores {
		pos := labels[i] != 0
		switch {
		case p >= threshold && pos:
			tp++
		case p >= threshold:
			fp++
		case pos:
			fn++
		}
	}
	return tp / (tp + fp), tp / (tp + fn)
}
