package accuracy

import (
	"cmp"
	"math"
	"slices"
)

// BinaryLabel is the element type of a label slice: 0 is the negative
// class and any other value (normally 1) the positive class.
type BinaryLabel interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 | ~uint8 | ~float32 | ~float64
}

// AUC returns the area under the ROC curve of scores for the binary labels
// (same length), computed by ranks as the Mann-Whitney statistic:
//
//	AUC = (R₊ - n₊(n₊+1)/2) / (n₊ · n₋)
//
// where R₊ is the sum of the positives' ranks among all scores, tied scores
// sharing their average rank. Equivalently, it is the probability that a
// random positive scores above a random negative, ties counting ½; it
// matches scikit-learn's roc_auc_score. It returns NaN when there are no
// positives or no negatives (including empty input) or when the lengths
// differ. NaN scores rank below every other score (and tie with each other).
//
// AUC allocates a sort buffer per call; use AUCWith to reuse one.
func AUC[L BinaryLabel](scores []float64, labels []L) float64 {
	return AUCWith(nil, scores, labels)
}

// AUCScratch is a reusable buffer for AUCWith. The zero value is ready to
// use; it is not safe for concurrent use.
type AUCScratch struct {
	buf []scored
}

type scored struct {
	score float64
	pos   bool
}

// AUCWith is AUC using s's buffer, grown as needed, instead of allocating
// one: once s has held len(scores) pairs it does not allocate. A nil s
// allocates.
func AUCWith[L BinaryLabel](s *AUCScratch, scores []float64, labels []L) float64 {
	if len(scores) != len(labels) {
		return math.NaN()
	}
	if s == nil {
		s = new(AUCScratch)
	}
	buf := slices.Grow(s.buf[:0], len(scores))[:len(scores)]
	s.buf = buf
	var npos int
	for i, sc := range scores {
		pos := labels[i] != 0
		buf[i] = scored{sc, pos}
		if pos {
			npos++
		}
	}
	nneg := len(scores) - npos
	if npos == 0 || nneg == 0 {
		return math.NaN()
	}
	slices.SortFunc(buf, func(a, b scored) int { return cmp.Compare(a.score, b.score) })

	// Walk groups of tied scores in increasing order: each positive beats
	// the negatives below its group and ties (½) with those in it.
	var wins, negBelow float64
	for i := 0; i < len(buf); {
		var p, n float64
		j := i
		for ; j < len(buf) && cmp.Compare(buf[j].score, buf[i].score) == 0; j++ {
			if buf[j].pos {
				p++
			} else {
				n++
			}
		}
		wins += p * (negBelow + n/2)
		negBelow += n
		i = j
	}
	return wins / (float64(npos) * float64(nneg))
}

// LogLossClip bounds the probabilities LogLoss takes logarithms of: scores
// are clipped to [LogLossClip, 1-LogLossClip], as scikit-learn's log_loss
// did by default before release 1.2 (from 1.2 its default clips at the
// dtype's machine epsilon, ≈2.2e-16 for float64; pass eps=1e-15 to match).
const LogLossClip = 1e-15

// LogLoss returns the mean binary cross-entropy of probabilities scores for
// labels (same length; 0 negative, anything else positive):
//
//	LogLoss = -(1/n) Σ_i [ y_i ln p_i + (1-y_i) ln(1-p_i) ],
//	p_i = min(max(scores[i], 1e-15), 1-1e-15)
//
// so each term is at most -ln(1e-15) ≈ 34.54. It returns NaN for empty
// input, differing lengths or a NaN score.
func LogLoss[L BinaryLabel](scores []float64, labels []L) float64 {
	if len(scores) != len(labels) || len(scores) == 0 {
		return math.NaN()
	}
	var sum float64
	for i, p := range scores {
		if math.IsNaN(p) {
			return math.NaN()
		}
		p = min(max(p, LogLossClip), 1-LogLossClip)
		if labels[i] != 0 {
			sum -= math.Log(p)
		} else {
			sum -= math.Log1p(-p)
		}
	}
	return sum / float64(len(scores))
}
