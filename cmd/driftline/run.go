package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/app"
)

func runCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlags("run")
	brokers := fs.String("brokers", "", "Kafka seed brokers, comma-separated (required)")
	roles := fs.String("roles", "features,monitor,trainer", "roles to run, comma-separated: features, monitor, trainer")
	partitions := fs.Int("partitions", 8, "partitions of data topics created when missing")
	provision := fs.Bool("provision", true, "create missing topics at start")
	metrics := fs.String("metrics-addr", "127.0.0.1:9464", "serve /metrics, /healthz, /readyz here; empty disables")
	minRows := fs.Int("min-rows", 2000, "labelled vectors needed to bootstrap v1 and to train a challenger")
	warmUp := fs.Duration("warm-up", 0, "event time after the first labelled vector that trainers never train on, while user state fills")
	if err := parse(fs, args); err != nil {
		return err
	}
	rs, err := app.ParseRoles(*roles)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg := app.Config{
		Kafka:       consumers.KafkaConfig{Brokers: consumers.ParseBrokers(*brokers), Partitions: int32(*partitions)},
		Roles:       rs,
		Provision:   *provision,
		MetricsAddr: *metrics,
	}
	cfg.Trainer.MinRows = *minRows
	cfg.Trainer.WarmUp = *warmUp
	if len(cfg.Kafka.Brokers) == 0 {
		return fmt.Errorf("%w: --brokers is required", errUsage)
	}
	p, err := app.New(cfg, log, nil)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
