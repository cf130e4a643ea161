package accuracy

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// Reference values marked "sklearn" were produced with scikit-learn 1.2.1
// and SciPy 1.10.1 (Debian bookworm python3-sklearn / python3-scipy) by the
// /usr/bin/python3 expressions quoted beside them.

func approx(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b))
}

func TestAUC(t *testing.T) {
	for _, c := range []struct {
		name   string
		scores []float64
		labels []float64
		want   float64
	}{
		// sklearn: roc_auc_score([0,0,1,1,1,0,1,1], [0.1,0.4,0.35,0.8,0.4,0.4,0.9,0.1])
		{"ties", []float64{0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1}, []float64{0, 0, 1, 1, 1, 0, 1, 1}, 0.6333333333333333},
		// sklearn: rng = np.random.default_rng(11); s = np.round(rng.random(40), 1);
		// y = (rng.random(40) < 0.3+0.5*s).astype(int); roc_auc_score(y, s)
		// (scipy.stats.mannwhitneyu(s[y==1], s[y==0]).statistic/(n1*n0) agrees)
		{"many ties", []float64{
			0.1, 0.5, 0.6, 0.0, 0.1, 0.9, 0.1, 0.1, 0.9, 0.6, 0.4, 0.5, 0.7, 0.3, 0.1, 0.8, 0.7, 0.5, 0.8, 0.5,
			1.0, 0.2, 0.6, 0.5, 0.4, 0.6, 0.2, 0.8, 0.9, 0.1, 0.5, 0.3, 0.1, 0.9, 0.4, 0.1, 0.7, 0.2, 0.9, 0.2,
		}, []float64{
			1, 1, 1, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1,
			1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1, 1,
		}, 0.6927899686520376},
		{"perfect", []float64{0.1, 0.2, 0.8, 0.9}, []float64{0, 0, 1, 1}, 1},
		{"inverted", []float64{0.1, 0.2, 0.8, 0.9}, []float64{1, 1, 0, 0}, 0},
		{"all tied", []float64{0.5, 0.5, 0.5, 0.5}, []float64{1, 0, 0, 1}, 0.5},
		// By hand: the positive 0.4 beats 0.3 and ties 0.4 → (1 + ½)/2.
		{"one positive", []float64{0.3, 0.4, 0.4}, []float64{0, 1, 0}, 0.75},
		{"NaN score ranks lowest", []float64{math.NaN(), 0.2}, []float64{0, 1}, 1},
	} {
		orig := slices.Clone(c.scores)
		if got := AUC(c.scores, c.labels); !approx(got, c.want, 1e-14) {
			t.Errorf("%s: AUC = %.17g, want %.17g", c.name, got, c.want)
		}
		if !slices.EqualFunc(orig, c.scores, func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
			t.Errorf("%s: AUC modified its input", c.name)
		}
		// Other label types give the same answer.
		l8 := make([]int8, len(c.labels))
		li := make([]int, len(c.labels))
		for i, l := range c.labels {
			l8[i], li[i] = int8(l), int(l)
		}
		if a8, ai := AUC(c.scores, l8), AUC(c.scores, li); !approx(a8, c.want, 1e-14) || !approx(ai, c.want, 1e-14) {
			t.Errorf("%s: AUC int8 %v, int %v, want %v", c.name, a8, ai, c.want)
		}
	}

	for _, c := range []struct {
		name           string
		scores, labels []float64
	}{
		{"only negatives", []float64{0.1, 0.9}, []float64{0, 0}},
		{"only positives", []float64{0.1, 0.9}, []float64{1, 1}},
		{"empty", nil, nil},
		{"length mismatch", []float64{0.1, 0.9}, []float64{0, 1, 1}},
	} {
		if got := AUC(c.scores, c.labels); !math.IsNaN(got) {
			t.Errorf("%s: AUC = %v, want NaN", c.name, got)
		}
	}
}

func TestAUCAgainstPairwise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var s AUCScratch
	for range 200 {
		n := 2 + r.IntN(300)
		levels := 1 + r.IntN(30)
		scores := make([]float64, n)
		labels := make([]float64, n)
		for i := range scores {
			scores[i] = float64(r.IntN(levels)) / float64(levels)
			if r.Float64() < 0.2+0.6*scores[i] {
				labels[i] = 1
			}
		}
		labels[0], labels[1] = 0, 1
		want := auc2(scores, labels)
		if got := AUCWith(&s, scores, labels); !approx(got, want, 1e-12) {
			t.Fatalf("AUCWith = %v, pairwise %v", got, want)
		}
	}
}

func TestAUCWithZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	scores := make([]float64, 1000)
	labels := make([]int8, 1000)
	for i := range scores {
		scores[i] = r.Float64()
		labels[i] = int8(r.IntN(2))
	}
	var s AUCScratch
	AUCWith(&s, scores, labels)
	var sink float64
	if a := testing.AllocsPerRun(100, func() { sink += AUCWith(&s, scores, labels) }); a != 0 {
		t.Errorf("AUCWith allocates %v times per call", a)
	}
	if !approx(AUCWith(&s, scores[:10], labels[:10]), AUC(scores[:10], labels[:10]), 0) {
		t.Error("reused scratch gives a different answer on a shorter input")
	}
}

func TestLogLoss(t *testing.T) {
	for _, c := range []struct {
		name   string
		scores []float64
		labels []float64
		want   float64
	}{
		// sklearn: log_loss([1,0,1,1,0,0,1,0], [0.9,0.1,0.8,0.35,0.6,0.0,1.0,0.5], eps=1e-15)
		{"mixed", []float64{0.9, 0.1, 0.8, 0.35, 0.6, 0.0, 1.0, 0.5}, []float64{1, 0, 1, 1, 0, 0, 1, 0}, 0.3866405774453303},
		// sklearn: log_loss([1,0], [0.0,1.0], labels=[0,1], eps=1e-15): both clipped, ≈ -ln(1e-15)
		{"confidently wrong", []float64{0, 1}, []float64{1, 0}, 34.53917619362578},
		// sklearn: log_loss([1,0,1], [1e-20,0.999999999999999999,0.3], labels=[0,1], eps=1e-15)
		{"clipped", []float64{1e-20, 0.999999999999999999, 0.3}, []float64{1, 0, 1}, 23.427441730525832},
		// sklearn: log_loss([1], [0.8], labels=[0,1], eps=1e-15) = -ln 0.8
		{"single", []float64{0.8}, []float64{1}, 0.2231435513142097},
		{"perfect", []float64{0, 1}, []float64{0, 1}, -math.Log(1 - 1e-15)},
		{"coin", []float64{0.5, 0.5, 0.5}, []float64{0, 1, 1}, math.Ln2},
	} {
		if got := LogLoss(c.scores, c.labels); !approx(got, c.want, 1e-12) {
			t.Errorf("%s: LogLoss = %.17g, want %.17g", c.name, got, c.want)
		}
		l8 := make([]int8, len(c.labels))
		for i, l := range c.labels {
			l8[i] = int8(l)
		}
		if got := LogLoss(c.scores, l8); !approx(got, c.want, 1e-12) {
			t.Errorf("%s: LogLoss int8 = %v, want %v", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		name           string
		scores, labels []float64
	}{
		{"empty", nil, nil},
		{"length mismatch", []float64{0.1}, []float64{0, 1}},
		{"NaN score", []float64{0.1, math.NaN()}, []float64{0, 1}},
	} {
		if got := LogLoss(c.scores, c.labels); !math.IsNaN(got) {
			t.Errorf("%s: LogLoss = %v, want NaN", c.name, got)
		}
	}
}

func BenchmarkAUCWith10k(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	scores := make([]float64, 10000)
	labels := make([]float64, 10000)
	for i := range scores {
		scores[i] = r.Float64()
		labels[i] = float64(r.IntN(2))
	}
	var s AUCScratch
	for b.Loop() {
		AUCWith(&s, scores, labels)
	}
}

// auc2 is the definition: P(score₊ > score₋) + ½·P(score₊ = score₋), by
// comparing every pair.
func auc2(scores, labels []float64) float64 {
	var wins, pairs float64
	for i := range scores {
		for j := range scores {
			if labels[i] == 1 && labels[j] == 0 {
				pairs++
				switch {
				case scores[i] > scores[j]:
					wins++
				case scores[i] == scores[j]:
					wins += 0.5
				}
			}
		}
	}
	return wins / pairs
}

// TestAUCLikeScikitLearn: the cases the logreg parity test checked its own
// AUC against (sklearn.metrics.roc_auc_score semantics).
func TestAUCLikeScikitLearn(t *testing.T) {
	for _, c := range []struct {
		s, y []float64
		want float64
	}{
		{[]float64{0.1, 0.4, 0.35, 0.8}, []float64{0, 0, 1, 1}, 0.75}, // sklearn docs example
		{[]float64{1, 2, 3, 4}, []float64{0, 0, 1, 1}, 1},
		{[]float64{4, 3, 2, 1}, []float64{0, 0, 1, 1}, 0},
		{[]float64{5, 5, 5, 5}, []float64{0, 1, 0, 1}, 0.5},
		// ties across classes count one half: pairs (pos,neg) = (2,1) win,
		// (2,2) tie, (3,1) win, (3,2) win → 3.5/4.
		{[]float64{1, 2, 2, 3}, []float64{0, 0, 1, 1}, 0.875},
	} {
		if got := AUC(c.s, c.y); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("AUC(%v, %v) = %v, want %v", c.s, c.y, got, c.want)
		}
	}
}
