package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/demo"
	"github.com/driftline/driftline/internal/storefront"
)

func demoCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlags("demo")
	asJSON := fs.Bool("json", false, "print one JSON summary at the end instead of the timeline")
	seed := fs.Uint64("seed", 7, "simulator seed")
	scenario := fs.String("scenario", "both", "shift injected: covariate, concept or both")
	rate := fs.Float64("sessions-per-minute", 150, "storefront sessions per event-time minute")
	shiftAt := fs.Duration("shift-at", 0, "event time of the shift after the start (default 3h)")
	speed := fs.Duration("speed", 0, "event time simulated per wall second (default 10m)")
	verbose := fs.Bool("v", false, "also print the roles' logs")
	metrics := fs.String("metrics-addr", "", "serve the in-process roles' /metrics here")
	chDSN := fs.String("clickhouse", "", "also copy every topic into this ClickHouse (native protocol DSN, clickhouse://127.0.0.1:9000) through the sink role")
	chDatabase := fs.String("clickhouse-database", "driftline", "ClickHouse database for --clickhouse")
	if err := parse(fs, args); err != nil {
		return err
	}
	sc, err := storefront.ParseScenario(*scenario)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if !*verbose {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	var out io.Writer = os.Stdout
	if *asJSON {
		out = nil
	}
	sum, err := demo.Run(ctx, demo.Config{
		Seed: *seed, Scenario: sc, SessionsPerMinute: *rate, ShiftAt: *shiftAt, Speed: *speed,
		MetricsAddr: *metrics, Out: out, ClickHouseDSN: *chDSN, ClickHouseDatabase: *chDatabase,
	}, log)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		if e := enc.Encode(sum); e != nil && err == nil {
			err = e
		}
	} else if sum != nil {
		fmt.Printf("\nevents %d, dead-lettered %d, alerts %d, retrain requests %d, champion v%d, wall %.1fs\n",
			sum.Events, sum.DLQ, sum.Alerts, sum.Retrains, sum.ChampionVersion, sum.WallSeconds)
	}
	return err
}
