package trainers

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/schemas"
)

// ContractMain is the Go CPU trainer behind the trainer contract (the one
// trainers/gpu/train.py implements on PyTorch): it reads --data, trains
// with --l2 and writes the model file to --out. It returns the process exit
// code (Exit*). `driftline train --contract` runs it, so the worker's
// contract path can be tested, and used, where there is no GPU.
func ContractMain(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("driftline train --contract", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "", "dataset file, JSON lines {\"values\":[...],\"label\":0|1}")
	out := fs.String("out", "", "model file to write")
	l2 := fs.Float64("l2", 1, "L2 penalty (1/C)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *data == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "driftline train --contract: --data and --out are required")
		return ExitUsage
	}
	f, err := os.Open(*data)
	if err != nil {
		fmt.Fprintf(stderr, "cannot open dataset: %v\n", err)
		return ExitFailed
	}
	rows, err := ReadLabels(f)
	f.Close()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitBadData
	}
	X, y := matrix(rows)
	fit, err := CPU{}.Fit(context.Background(), *l2, X, y)
	if err != nil {
		fmt.Fprintf(stderr, "cannot train: %v\n", err)
		if errors.Is(err, logreg.ErrEmpty) || errors.Is(err, logreg.ErrShape) || errors.Is(err, logreg.ErrSingleClass) ||
			errors.Is(err, logreg.ErrLabel) || errors.Is(err, logreg.ErrNonFinite) {
			return ExitBadData
		}
		return ExitFailed
	}
	v := schemas.ModelVersion{Backend: fit.Backend, Hyperparameters: fit.Hyperparameters}
	fit.Model.FillVersion(&v)
	b, err := json.Marshal(v)
	if err == nil {
		err = os.WriteFile(*out, b, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "cannot write model file: %v\n", err)
		return ExitFailed
	}
	return ExitOK
}
