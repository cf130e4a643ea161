package trainers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/schemas"
)

// Backends a version records (schemas.ModelVersion.Backend). A contract
// trainer names its own in the model file it writes (trainers/gpu/train.py
// writes "gpu-torch-logreg", or "cpu-torch-logreg" when torch found no
// device).
const (
	BackendCPU = "cpu-go-logreg"
	BackendGPU = "gpu-torch-logreg"
)

// Exit codes of the trainer contract (see docs/trainers.md).
const (
	ExitOK          = 0 // the model file is written
	ExitFailed      = 1 // anything else; the request is retried
	ExitUsage       = 2 // bad arguments
	ExitUnavailable = 3 // the backend cannot run here (no device, no torch): use the CPU
	ExitBadData     = 4 // the dataset cannot be trained on (one class, wrong shape): retrying will not help
)

// ErrBackendUnavailable is returned by a contract backend whose trainer
// exited with ExitUnavailable.
var ErrBackendUnavailable = errors.New("training backend unavailable")

// Fit is a trained model as a backend returns it.
type Fit struct {
	Model *logreg.Model
	// Backend is what trained it, recorded on the version.
	Backend string
	// Hyperparameters the backend used beyond the L2 penalty.
	Hyperparameters map[string]float64
}

// Backend fits L2 logistic regression with standardisation (the model of
// internal/logreg) to a training slice.
type Backend interface {
	Fit(ctx context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error)
}

// CPU is the Go trainer of internal/logreg, on every core.
type CPU struct{}

// Fit implements Backend.
func (CPU) Fit(_ context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error) {
	m, err := logreg.Train(logreg.Config{L2: l2}, X, y)
	if err != nil {
		return nil, err
	}
	return &Fit{Model: m, Backend: BackendCPU, Hyperparameters: map[string]float64{"iterations": float64(m.Iterations)}}, nil
}

// Command is a trainer process behind the file-in, file-out contract:
//
//	<Command...> --data DATA.jsonl --out MODEL.json --l2 L2
//
// DATA.jsonl has one {"values":[...],"label":0|1} object a line, in
// training order; the trainer writes MODEL.json, a schemas.ModelVersion
// object whose backend, weights, bias, mean, std, l2 (and optionally
// hyperparameters) are set, and exits with one of the Exit* codes.
type Command struct {
	// Command and its leading arguments, e.g. ["python3",
	// "trainers/gpu/train.py"].
	Command []string
	// Timeout for one training. Default 10 min.
	Timeout time.Duration
	// Fallback trains when the process exits with ExitUnavailable; nil:
	// return ErrBackendUnavailable.
	Fallback Backend
	Log      *slog.Logger
}

// Fit implements Backend.
func (c Command) Fit(ctx context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error) {
	f, err := c.run(ctx, l2, X, y)
	if errors.Is(err, ErrBackendUnavailable) && c.Fallback != nil {
		if c.Log != nil {
			c.Log.Warn("contract trainer unavailable; training on the CPU", "command", c.Command, "err", err)
		}
		return c.Fallback.Fit(ctx, l2, X, y)
	}
	return f, err
}

func (c Command) run(ctx context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error) {
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("%w: no trainer command configured", ErrBackendUnavailable)
	}
	dir, err := os.MkdirTemp("", "driftline-train-")
	if err != nil {
		return nil, fmt.Errorf("cannot create training directory: %w", err)
	}
	defer os.RemoveAll(dir)
	data, out := filepath.Join(dir, "data.jsonl"), filepath.Join(dir, "model.json")
	if err := writeXY(data, X, y); err != nil {
		return nil, err
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(c.Command[1:len(c.Command):len(c.Command)], "--data", data, "--out", out, "--l2", strconv.FormatFloat(l2, 'g', -1, 64))
	cmd := exec.CommandContext(ctx, c.Command[0], args...)
	// The trainer may fork (python workers, a shell): on timeout the whole
	// process group is killed, and Wait gives up on inherited pipes after
	// WaitDelay, so a training never outlives its timeout by much.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailBuffer{max: 64 << 10}
	cmd.Stderr = stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == ExitUnavailable:
		return nil, fmt.Errorf("%w: %s", ErrBackendUnavailable, lastLine(stderr.b))
	case errors.As(err, &exit) && exit.ExitCode() == ExitBadData:
		return nil, fmt.Errorf("%w: contract trainer rejected the dataset: %s", errPermanent, lastLine(stderr.b))
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%w: %w", ErrBackendUnavailable, err)
	case err != nil:
		return nil, fmt.Errorf("cannot train with %v: %w: %s", c.Command, err, lastLine(stderr.b))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("cannot read the contract trainer's model file: %w", err)
	}
	var v schemas.ModelVersion
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("cannot decode the contract trainer's model file: %w", err)
	}
	if len(X) > 0 {
		v.Features = make([]string, len(X[0]))
	}
	m, err := logreg.ModelFromVersion(&v)
	if err != nil {
		return nil, fmt.Errorf("cannot use the contract trainer's model: %w", err)
	}
	if v.Backend == "" {
		v.Backend = "external"
	}
	return &Fit{Model: m, Backend: v.Backend, Hyperparameters: v.Hyperparameters}, nil
}

func writeXY(path string, X [][]float64, y []float64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot create dataset file: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var line []byte
	for i, x := range X {
		line = append(line[:0], `{"values":[`...)
		for j, v := range x {
			if j > 0 {
				line = append(line, ',')
			}
			line = strconv.AppendFloat(line, v, 'g', -1, 64)
		}
		line = append(line, `],"label":`...)
		line = strconv.AppendInt(line, int64(y[i]), 10)
		line = append(line, "}\n"...)
		w.Write(line)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("cannot write dataset file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write dataset file: %w", err)
	}
	return nil
}

func lastLine(b []byte) string {
	b = bytes.TrimSpace(b)
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		b = b[i+1:]
	}
	return string(b)
}

// Probe runs a device probe command (e.g. nvidia-smi -L) and reports
// whether it succeeded within 10 s.
func Probe(ctx context.Context, probe []string) bool {
	if len(probe) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, probe[0], probe[1:]...).Run() == nil
}

// tailBuffer keeps the last max bytes written to it: a trainer's stderr is
// read for its last line only, and must not grow without bound.
type tailBuffer struct {
	b   []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}
