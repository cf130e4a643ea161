package trainers

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/driftline/driftline/schemas"
)

func readTestdata(t *testing.T) []schemas.Label {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "testdata", "train", "purchase_20k.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := ReadLabels(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// contractTrainer is this test binary acting as the contract trainer (see
// TestMain).
func contractTrainer(t *testing.T, mode string) Command {
	t.Setenv("DRIFTLINE_CONTRACT_TRAINER", mode)
	return Command{Command: []string{os.Args[0]}}
}

// TestContractTrainerMatchesTheInProcessTrainer hands a training set to a
// trainer process through the contract (dataset file in, model file out)
// and gets exactly the model the in-process CPU trainer fits.
func TestContractTrainerMatchesTheInProcessTrainer(t *testing.T) {
	rows := readTestdata(t)[:5000]
	X, y := matrix(rows)
	mark := filepath.Join(t.TempDir(), "ran")
	t.Setenv("DRIFTLINE_CONTRACT_MARK", mark)
	got, err := contractTrainer(t, "go").Fit(context.Background(), 2, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("the contract trainer did not run: %v", err)
	}
	want, err := CPU{}.Fit(context.Background(), 2, X, y)
	if err != nil {
		t.Fatal(err)
	}
	if got.Backend != BackendCPU || got.Model.L2 != 2 || got.Model.Bias != want.Model.Bias ||
		!slices.Equal(got.Model.Weights, want.Model.Weights) || !slices.Equal(got.Model.Std, want.Model.Std) {
		t.Errorf("contract model %+v (%s), in-process %+v", got.Model, got.Backend, want.Model)
	}
}

func TestContractTrainerUnavailableFallsBackToCPU(t *testing.T) {
	rows := readTestdata(t)[:2000]
	X, y := matrix(rows)
	c := contractTrainer(t, "unavailable")
	if _, err := c.Fit(context.Background(), 1, X, y); !errors.Is(err, ErrBackendUnavailable) {
		t.Fatalf("without fallback: err = %v, want ErrBackendUnavailable", err)
	}
	c.Fallback = CPU{}
	f, err := c.Fit(context.Background(), 1, X, y)
	if err != nil || f.Backend != BackendCPU {
		t.Fatalf("with fallback: %v, %v", f, err)
	}
	if _, err := (Command{Command: []string{"/nonexistent/trainer"}}).Fit(context.Background(), 1, X, y); !errors.Is(err, ErrBackendUnavailable) {
		t.Errorf("missing trainer: err = %v, want ErrBackendUnavailable", err)
	}
}

func TestContractTrainerRejectsBadDataPermanently(t *testing.T) {
	X := [][]float64{{1, 2}, {3, 4}, {5, 6}}
	y := []float64{1, 1, 1} // one class
	_, err := contractTrainer(t, "go").Fit(context.Background(), 1, X, y)
	if !errors.Is(err, errPermanent) {
		t.Errorf("err = %v, want a permanent error (exit %d)", err, ExitBadData)
	}
}

// TestTrainWithRecordsBackendDatasetAndHyperparameters: a version trained
// through the contract records the backend the model file names, the
// dataset fingerprint and the hyperparameters.
func TestTrainWithRecordsBackendDatasetAndHyperparameters(t *testing.T) {
	rows := readTestdata(t)
	names := make([]string, 30)
	for i := range names {
		names[i] = "f" + string(rune('a'+i%26))
	}
	res, err := TrainWith(context.Background(), TrainConfig{}, contractTrainer(t, "go"), names, rows, nil, "file:purchase_20k.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	v := res.Version
	// The holdout AUC scikit-learn reaches on the same split
	// (testdata/train/sklearn_reference.json).
	if d := v.Metrics.AUC - 0.8946430895269888; d < -0.005 || d > 0.005 {
		t.Errorf("holdout AUC %.6f, scikit-learn's 0.894643", v.Metrics.AUC)
	}
	if v.Backend != BackendCPU || v.Hyperparameters["l2"] != 1 || v.Hyperparameters["holdout_fraction"] != 0.2 || v.Hyperparameters["iterations"] == 0 {
		t.Errorf("backend %q hyperparameters %v", v.Backend, v.Hyperparameters)
	}
	if ds := Fingerprint(rows, "file:purchase_20k.jsonl"); v.Dataset == nil || *v.Dataset != ds || ds.Rows != 20000 || len(ds.SHA256) != 64 {
		t.Errorf("dataset %+v, want %+v", v.Dataset, ds)
	}
}

// TestGPUTrainerScript runs trainers/gpu/train.py through the contract
// where PyTorch is installed ($DRIFTLINE_PYTHON, default python3): on the
// CPU (--device cpu), and on CUDA where a device is present. CI has
// neither, and the test skips.
func TestGPUTrainerScript(t *testing.T) {
	py := os.Getenv("DRIFTLINE_PYTHON")
	if py == "" {
		py = "python3"
	}
	if exec.Command(py, "-c", "import torch").Run() != nil {
		t.Skip(py + " with torch not available")
	}
	devices := []string{"cpu"}
	if exec.Command(py, "-c", "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)").Run() == nil {
		devices = append(devices, "cuda")
	} else {
		// Without a device the script must say so with its exit code, so
		// the worker trains on the CPU.
		_, err := Command{Command: []string{py, filepath.Join("gpu", "train.py")}}.Fit(context.Background(), 1, [][]float64{{1}, {2}}, []float64{0, 1})
		if !errors.Is(err, ErrBackendUnavailable) {
			t.Errorf("no CUDA device: err = %v, want ErrBackendUnavailable", err)
		}
	}
	rows := readTestdata(t)
	X, y := matrix(rows[:16000])
	hX, hy := matrix(rows[16000:])
	want, err := CPU{}.Fit(context.Background(), 1, X, y)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range devices {
		f, err := Command{Command: []string{py, filepath.Join("gpu", "train.py"), "--device", dev}}.Fit(context.Background(), 1, X, y)
		if err != nil {
			t.Fatal(err)
		}
		auc, _ := evaluate(f.Model, hX, hy)
		if d := auc - 0.8946430895269888; d < -0.005 || d > 0.005 {
			t.Errorf("%s holdout AUC %.6f, scikit-learn's 0.894643", f.Backend, auc)
		}
		maxDiff := 0.0
		for j := range f.Model.Weights {
			maxDiff = max(maxDiff, math.Abs(f.Model.Weights[j]-want.Model.Weights[j]))
		}
		if maxDiff > 1e-6 || f.Backend != dev[:3]+"-torch-logreg" && !(dev == "cuda" && f.Backend == BackendGPU) {
			t.Errorf("%s: backend %q, weights differ from the Go trainer's by up to %g", dev, f.Backend, maxDiff)
		}
		t.Logf("%s: backend %s, holdout AUC %.6f, max weight difference from the Go trainer %.2g, %v", dev, f.Backend, auc, maxDiff, f.Hyperparameters)
	}
}
