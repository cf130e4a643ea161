package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

func trainCmd(ctx context.Context, args []string, log *slog.Logger) error {
	// The trainer contract (see docs/trainers.md) has its own exit codes.
	for _, a := range args {
		if a == "--contract" || a == "-contract" {
			rest := make([]string, 0, len(args))
			for _, b := range args {
				if b != a {
					rest = append(rest, b)
				}
			}
			os.Exit(trainers.ContractMain(rest, os.Stderr))
		}
	}
	return runTrain(ctx, args, log, os.Stdout)
}

// trainReport is what `driftline train --json` prints.
type trainReport struct {
	Rows        int              `json:"rows"`
	TrainRows   int              `json:"train_rows"`
	HoldoutRows int              `json:"holdout_rows"`
	Features    int              `json:"features"`
	Backend     string           `json:"backend"`
	L2          float64          `json:"l2"`
	AUC         float64          `json:"auc"`
	LogLoss     float64          `json:"log_loss"`
	Seconds     float64          `json:"seconds"`
	RowsPerSec  float64          `json:"rows_per_sec"`
	Fingerprint *schemas.Dataset `json:"fingerprint"`
	// Set when reproducing a version (--version).
	Reproduces *reproduction `json:"reproduces,omitempty"`
}

type reproduction struct {
	Model              string           `json:"model"`
	Version            int              `json:"version"`
	Recorded           *schemas.Dataset `json:"recorded_fingerprint"`
	FingerprintMatches bool             `json:"fingerprint_matches"`
	RecordedAUC        float64          `json:"recorded_auc"`
	AUCDiff            float64          `json:"auc_diff"`
}

// runTrain is `driftline train`, writing to out.
func runTrain(ctx context.Context, args []string, log *slog.Logger, out io.Writer) error {
	fs := newFlags("train")
	data := fs.String("data", "", "JSON-lines file of labelled vectors: {\"values\":[...],\"label\":0|1} or whole driftline.labels records")
	brokers := fs.String("brokers", "", "with --version: replay the version's recorded dataset from the labels topic of these brokers")
	model := fs.String("model", "purchase_propensity", "with --version: the model")
	version := fs.Int("version", 0, "reproduce this version: train on its recorded dataset (from --brokers, or --data) and compare")
	save := fs.String("save", "", "write the training set (in training order) to this JSON-lines file")
	l2 := fs.Float64("l2", 0, "L2 penalty, 1/C (default: the version's, else 1)")
	holdout := fs.Float64("holdout-fraction", 0, "newest share held out for the metrics (default: the version's, else 0.2)")
	backend := fs.String("backend", "cpu", "cpu, or gpu: run --gpu-command through the trainer contract")
	gpuCmd := fs.String("gpu-command", "python3 trainers/gpu/train.py", "the contract trainer of --backend gpu (split on spaces)")
	asJSON := fs.Bool("json", false, "print one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *data == "" && *version == 0 {
		return fmt.Errorf("%w: give --data FILE, or --brokers ADDRS with --version N", errUsage)
	}

	var mv *schemas.ModelVersion
	var rows []schemas.Label
	source := ""
	if *version != 0 {
		if *brokers == "" {
			return fmt.Errorf("%w: --version needs --brokers to read the registry", errUsage)
		}
		kcfg, err := kafkaConfig(*brokers)
		if err != nil {
			return err
		}
		if mv, err = readVersion(ctx, kcfg, log, *model, *version); err != nil {
			return err
		}
		if mv.Dataset == nil {
			return fmt.Errorf("cannot reproduce %s/v%d: it records no dataset (trained before fingerprints)", *model, *version)
		}
	}
	if *data == "" {
		kcfg, err := kafkaConfig(*brokers)
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		rows, err = trainers.LabelReplay{Kafka: kcfg, Log: log}.TrainingRows(rctx, *model, mv.Dataset.From, mv.Dataset.To)
		cancel()
		if err != nil {
			return err
		}
		source = trainers.SourceLabelsTopic
	} else {
		f, err := os.Open(*data)
		if err != nil {
			return fmt.Errorf("cannot open training data: %w", err)
		}
		rows, err = trainers.ReadLabels(f)
		f.Close()
		if err != nil {
			return err
		}
		source = trainers.SourceFilePrefix + *data
	}
	if len(rows) == 0 {
		return fmt.Errorf("cannot train: no labelled vectors")
	}

	cfg := trainers.TrainConfig{L2: *l2, HoldoutFraction: *holdout}
	names := make([]string, len(rows[0].Values))
	for i := range names {
		names[i] = "x" + strconv.Itoa(i)
	}
	if mv != nil {
		if cfg.L2 == 0 {
			cfg.L2 = mv.Hyperparameters["l2"]
		}
		if cfg.HoldoutFraction == 0 {
			cfg.HoldoutFraction = mv.Hyperparameters["holdout_fraction"]
		}
		if len(mv.Features) == len(names) {
			names = mv.Features
		}
	}
	var b trainers.Backend = trainers.CPU{}
	switch *backend {
	case "cpu":
	case "gpu":
		b = trainers.Command{Command: strings.Fields(*gpuCmd), Log: log}
	default:
		return fmt.Errorf("%w: --backend must be cpu or gpu", errUsage)
	}
	start := time.Now()
	res, err := trainers.TrainWith(ctx, cfg, b, names, rows, nil, source)
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	v := res.Version
	if *save != "" {
		f, err := os.Create(*save)
		if err != nil {
			return fmt.Errorf("cannot create %s: %w", *save, err)
		}
		sorted := trainers.TrainingOrder(rows)
		err = trainers.WriteLabels(f, sorted)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	rep := trainReport{
		Rows: v.Rows, TrainRows: v.Rows - v.Metrics.HoldoutRows, HoldoutRows: v.Metrics.HoldoutRows, Features: len(names),
		Backend: v.Backend, L2: v.L2, AUC: v.Metrics.AUC, LogLoss: v.Metrics.LogLoss, Seconds: secs,
		RowsPerSec: float64(v.Rows-v.Metrics.HoldoutRows) / secs, Fingerprint: v.Dataset,
	}
	if mv != nil {
		rep.Reproduces = &reproduction{
			Model: mv.Model, Version: mv.Version, Recorded: mv.Dataset,
			FingerprintMatches: mv.Dataset.SHA256 == v.Dataset.SHA256 && mv.Dataset.Rows == v.Dataset.Rows,
			RecordedAUC:        mv.Metrics.AUC, AUCDiff: v.Metrics.AUC - mv.Metrics.AUC,
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		return enc.Encode(rep)
	}
	fmt.Fprintf(out, "trained on %d rows (%d held out) x %d features with %s in %.3fs (%.0f rows/s)\n",
		rep.Rows, rep.HoldoutRows, rep.Features, rep.Backend, rep.Seconds, rep.RowsPerSec)
	fmt.Fprintf(out, "holdout AUC %.6f, log loss %.6f\ndataset %d rows, sha256 %s\n", rep.AUC, rep.LogLoss, rep.Fingerprint.Rows, rep.Fingerprint.SHA256)
	if r := rep.Reproduces; r != nil {
		fmt.Fprintf(out, "reproduces %s/v%d: fingerprint matches %v, AUC %.6f vs recorded %.6f\n", r.Model, r.Version, r.FingerprintMatches, rep.AUC, r.RecordedAUC)
	}
	return nil
}

// readVersion reads one version from the registry.
func readVersion(ctx context.Context, kcfg consumers.KafkaConfig, log *slog.Logger, model string, version int) (*schemas.ModelVersion, error) {
	feed := consumers.NewModelFeed(kcfg, log)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- feed.Run(ctx) }()
	select {
	case <-feed.Ready():
	case err := <-errc:
		return nil, fmt.Errorf("cannot read the registry: %w", err)
	case <-ctx.Done():
		return nil, fmt.Errorf("cannot read the registry: %w", ctx.Err())
	}
	mv := feed.Version(model, version)
	if mv == nil {
		return nil, fmt.Errorf("model %s has no version %d", model, version)
	}
	return mv, nil
}
