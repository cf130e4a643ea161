package logreg

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/driftline/driftline/internal/accuracy"
)

// Parity with scikit-learn on testdata/train (see testdata/train/gen.py,
// which writes both the data and the reference from the same rounded
// values).

const trainDir = "../../testdata/train"

// skReference is testdata/train/sklearn_reference.json (the fields used).
type skReference struct {
	SklearnVersion string    `json:"sklearn_version"`
	Pipeline       string    `json:"pipeline"`
	Data           string    `json:"data"`
	DataSHA256     string    `json:"data_sha256"`
	Rows           int       `json:"rows"`
	Features       int       `json:"features"`
	TrainRows      int       `json:"train_rows"`
	HoldoutAUC     float64   `json:"holdout_roc_auc"`
	HoldoutLogLoss float64   `json:"holdout_log_loss"`
	NIter          int       `json:"n_iter"`
	Intercept      float64   `json:"intercept"`
	Coef           []float64 `json:"coef"`
	ScalerMean     []float64 `json:"scaler_mean"`
	ScalerScale    []float64 `json:"scaler_scale"`
	// Converged is the same pipeline with solver="newton-cholesky",
	// tol=1e-12: scikit-learn's own fit at the optimum.
	Converged struct {
		Pipeline       string    `json:"pipeline"`
		HoldoutAUC     float64   `json:"holdout_roc_auc"`
		HoldoutLogLoss float64   `json:"holdout_log_loss"`
		Intercept      float64   `json:"intercept"`
		Coef           []float64 `json:"coef"`
	} `json:"converged"`
}

// readLabelledJSONL reads one {"values":[...],"label":0|1} object a line.
func readLabelledJSONL(t testing.TB, path string) (X [][]float64, y []float64, digest string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(raw)
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		var v struct {
			Values []float64 `json:"values"`
			Label  *int      `json:"label"`
		}
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil || v.Label == nil {
			t.Fatalf("%s:%d: %v (label present: %v)", path, line, err, v.Label != nil)
		}
		X = append(X, v.Values)
		y = append(y, float64(*v.Label))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return X, y, hex.EncodeToString(sum[:])
}

// TestScikitLearnParity trains on the first 80% of purchase_20k.jsonl (time
// order) and compares with scikit-learn's
// StandardScaler + LogisticRegression(C=1, lbfgs) fit on the same rows.
//
// Tolerances. The standardisation is the same arithmetic (two-pass mean and
// population std), so it must agree to rounding (1e-12 relative).
//
// The optimum is unique (strictly convex objective), but lbfgs with its
// defaults stops short of it, here after 35 iterations with coefficients up
// to 1.6e-4 from the optimum. What stops it is scipy's ftol (relative
// decrease of the objective under 64 ulps), not tol=1e-4: with tol=1e-12
// it stops at the same iterate. The reference therefore also records the same
// pipeline with scikit-learn's newton-cholesky solver at tol=1e-12, which
// does reach the optimum (it agrees with newton-cg to 1.5e-12). So:
//
//   - against converged scikit-learn, every coefficient and the intercept
//     within 1e-8 (observed 2e-11: this is the real parity check);
//   - against default lbfgs, within 5e-4 (observed 1.6e-4, all of it
//     lbfgs's stopping error; 1e-4 would fail for lbfgs's sake, not ours);
//   - holdout ROC AUC and log loss within 0.005 of lbfgs's (observed ~1e-6
//     and ~1e-8) and within 1e-9 of converged scikit-learn's.
func TestScikitLearnParity(t *testing.T) {
	var ref skReference
	raw, err := os.ReadFile(filepath.Join(trainDir, "sklearn_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	X, y, digest := readLabelledJSONL(t, filepath.Join(trainDir, ref.Data))
	if digest != ref.DataSHA256 {
		t.Fatalf("%s has sha256 %s, the reference was computed on %s: rerun testdata/train/gen.py testdata",
			ref.Data, digest, ref.DataSHA256)
	}
	if len(X) != ref.Rows || len(X[0]) != ref.Features || len(ref.Coef) != ref.Features {
		t.Fatalf("data %d x %d, reference %d x %d with %d coefficients",
			len(X), len(X[0]), ref.Rows, ref.Features, len(ref.Coef))
	}
	ntr := ref.TrainRows
	m, err := Train(Config{L2: 1}, X[:ntr], y[:ntr])
	if err != nil {
		t.Fatal(err)
	}

	for j := range ref.Features {
		if d := math.Abs(m.Mean[j] - ref.ScalerMean[j]); d > 1e-12*math.Max(1, math.Abs(ref.ScalerMean[j])) {
			t.Errorf("Mean[%d] = %.17g, StandardScaler %.17g", j, m.Mean[j], ref.ScalerMean[j])
		}
		if d := math.Abs(m.Std[j] - ref.ScalerScale[j]); d > 1e-12*ref.ScalerScale[j] {
			t.Errorf("Std[%d] = %.17g, StandardScaler %.17g", j, m.Std[j], ref.ScalerScale[j])
		}
	}

	maxDiff := func(name string, coef []float64, intercept, tol float64) float64 {
		t.Helper()
		worst := math.Abs(m.Bias - intercept)
		if worst > tol {
			t.Errorf("Bias = %.10f, scikit-learn %s %.10f", m.Bias, name, intercept)
		}
		for j, w := range coef {
			d := math.Abs(m.Weights[j] - w)
			worst = math.Max(worst, d)
			if d > tol {
				t.Errorf("Weights[%d] = %.10f, scikit-learn %s %.10f (diff %.2g > %g)", j, m.Weights[j], name, w, d, tol)
			}
		}
		return worst
	}
	diffLBFGS := maxDiff("lbfgs", ref.Coef, ref.Intercept, 5e-4)
	diffConv := maxDiff("newton-cholesky", ref.Converged.Coef, ref.Converged.Intercept, 1e-8)

	p := make([]float64, 0, len(X)-ntr)
	for _, row := range X[ntr:] {
		p = append(p, m.Predict(row))
	}
	auc, ll := accuracy.AUC(p, y[ntr:]), accuracy.LogLoss(p, y[ntr:])
	if math.Abs(auc-ref.HoldoutAUC) > 0.005 {
		t.Errorf("holdout ROC AUC %.6f, scikit-learn %.6f", auc, ref.HoldoutAUC)
	}
	if math.Abs(ll-ref.HoldoutLogLoss) > 0.005 {
		t.Errorf("holdout log loss %.6f, scikit-learn %.6f", ll, ref.HoldoutLogLoss)
	}
	if math.Abs(auc-ref.Converged.HoldoutAUC) > 1e-9 || math.Abs(ll-ref.Converged.HoldoutLogLoss) > 1e-9 {
		t.Errorf("holdout ROC AUC %.10f, log loss %.10f; converged scikit-learn %.10f, %.10f",
			auc, ll, ref.Converged.HoldoutAUC, ref.Converged.HoldoutLogLoss)
	}
	t.Logf("scikit-learn %s %s, %d train / %d holdout rows: Newton %d iterations, lbfgs %d",
		ref.SklearnVersion, ref.Pipeline, ntr, len(X)-ntr, m.Iterations, ref.NIter)
	t.Logf("holdout AUC %.8f (lbfgs %.8f, diff %.2g), log loss %.8f (lbfgs %.8f, diff %.2g)",
		auc, ref.HoldoutAUC, auc-ref.HoldoutAUC, ll, ref.HoldoutLogLoss, ll-ref.HoldoutLogLoss)
	t.Logf("max |coef diff|: %.2g vs lbfgs, %.2g vs %s; holdout AUC diff %.2g, log loss diff %.2g vs converged",
		diffLBFGS, diffConv, ref.Converged.Pipeline, auc-ref.Converged.HoldoutAUC, ll-ref.Converged.HoldoutLogLoss)
}

// readTrainBinary reads the DLTRAIN1 format documented in
// testdata/train/gen.py: magic, uint64 rows, uint64 features, row-major
// float64 X, float64 y, all little-endian.
func readTrainBinary(path string) ([][]float64, []float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [24]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, nil, err
	}
	if string(hdr[:8]) != "DLTRAIN1" {
		return nil, nil, fmt.Errorf("%s: not a DLTRAIN1 file", path)
	}
	n, d := binary.LittleEndian.Uint64(hdr[8:]), binary.LittleEndian.Uint64(hdr[16:])
	if n == 0 || d == 0 || n > 1<<32 || d > 1<<16 {
		return nil, nil, fmt.Errorf("%s: implausible shape %d x %d", path, n, d)
	}
	vals := make([]float64, n*d+n)
	buf := make([]byte, 1<<16)
	for off := 0; off < len(vals); {
		k := min(len(buf)/8, len(vals)-off)
		if _, err := io.ReadFull(r, buf[:8*k]); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		for i := range k {
			vals[off+i] = math.Float64frombits(binary.LittleEndian.Uint64(buf[8*i:]))
		}
		off += k
	}
	X := make([][]float64, n)
	for i := range X {
		X[i] = vals[uint64(i)*d : uint64(i+1)*d : uint64(i+1)*d]
	}
	return X, vals[n*d:], nil
}

// BenchmarkTrain1Mx30 times Train (L2 = 1, default workers) on the binary
// file named by DRIFTLINE_TRAIN_FILE (testdata/train/compare.sh writes a
// 1,000,000 x 30 one to a temporary directory and runs this with
// -benchtime 1x); it is skipped when the variable is unset. Reading the file
// is not timed. Reported metrics: rows, features, Newton iterations and the
// in-sample ROC AUC of the last model trained.
func BenchmarkTrain1Mx30(b *testing.B) {
	path := os.Getenv("DRIFTLINE_TRAIN_FILE")
	if path == "" {
		b.Skip("DRIFTLINE_TRAIN_FILE not set (see testdata/train/compare.sh)")
	}
	X, y, err := readTrainBinary(path)
	if err != nil {
		b.Fatal(err)
	}
	var m *Model
	b.ResetTimer()
	for b.Loop() {
		if m, err = Train(Config{L2: 1}, X, y); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	p := make([]float64, len(X))
	for i, row := range X {
		p[i] = m.Predict(row)
	}
	b.ReportMetric(float64(len(X)), "rows")
	b.ReportMetric(float64(len(X[0])), "features")
	b.ReportMetric(float64(m.Iterations), "newton-iters")
	auc := accuracy.AUC(p, y)
	b.ReportMetric(auc, "auc")
	b.ReportMetric(math.Round(auc*1e9), "auc*1e9") // the benchmark line prints "auc" with 4 digits
}
