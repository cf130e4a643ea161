package accuracy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Every metric against scikit-learn 1.2.1 on the cases of
// testdata/accuracy/cases.json (written by testdata/accuracy/gen.py).
func TestMetricsAgreeWithScikitLearn(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "accuracy", "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Sklearn string `json:"sklearn"`
		Cases   []struct {
			Name      string    `json:"name"`
			Labels    []int     `json:"labels"`
			Scores    []float64 `json:"scores"`
			Threshold float64   `json:"threshold"`
			LogLoss   float64   `json:"log_loss"`
			Brier     float64   `json:"brier"`
			ROCAUC    float64   `json:"roc_auc"`
			ECE       float64   `json:"ece"`
			Precision float64   `json:"precision"`
			Recall    float64   `json:"recall"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	for _, c := range f.Cases {
		p, r := PrecisionRecall(c.Scores, c.Labels, c.Threshold)
		for _, m := range []struct {
			name      string
			got, want float64
		}{
			{"log_loss", LogLoss(c.Scores, c.Labels), c.LogLoss},
			{"brier", Brier(c.Scores, c.Labels), c.Brier},
			{"roc_auc", AUC(c.Scores, c.Labels), c.ROCAUC},
			{"ece", ECE(c.Scores, c.Labels), c.ECE},
			{"precision", p, c.Precision},
			{"recall", r, c.Recall},
		} {
			if !approx(m.got, m.want, 1e-12) {
				t.Errorf("%s: %s = %.17g, scikit-learn %s %.17g", c.Name, m.name, m.got, f.Sklearn, m.want)
			}
		}
	}
}

func TestECEDoesNotAllocate(t *testing.T) {
	s, l := []float64{0.1, 0.35, 0.8, 1}, []int{0, 1, 1, 1}
	if n := testing.AllocsPerRun(100, func() { ECE(s, l); Brier(s, l); PrecisionRecall(s, l, 0.5) }); n != 0 {
		t.Errorf("%g allocations", n)
	}
}
