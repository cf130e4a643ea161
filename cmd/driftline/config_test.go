package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/consumers"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "driftline.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func clearRunEnv(t *testing.T) {
	for _, name := range []string{consumers.EnvKafkaBrokers, consumers.EnvClickHouseDSN, consumers.EnvAlertWebhook} {
		t.Setenv(name, "")
	}
}

// A setting only a Go caller could change before --config (the stage's key
// budget, its input alignment, the monitor's policy) now comes from the file;
// a flag given on the command line still wins, and a flag not given does not
// overwrite what the file set.
func TestRunConfigFileAndFlags(t *testing.T) {
	clearRunEnv(t)
	path := writeConfig(t, `
kafka:
  brokers: [kafka-0:9092, kafka-1:9092]
provision: false
features:
  max_keys: 1234
  max_input_skew: 2m
  fetch_max_bytes: 4194304
  max_batch_records: 500
monitor:
  consecutive: 5
trainer:
  min_rows: 99
  shadow:
    probation_margin: 0.05
`)
	cfg, err := runConfig([]string{"--config", path, "--min-rows", "7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.MaxKeys != 1234 || cfg.Features.MaxInputSkew != 2*time.Minute ||
		cfg.Features.FetchMaxBytes != 4<<20 || cfg.Features.MaxBatchRecords != 500 {
		t.Errorf("features from the file: %+v", cfg.Features)
	}
	if cfg.Monitor.Consecutive != 5 {
		t.Errorf("monitor.consecutive = %d, want 5", cfg.Monitor.Consecutive)
	}
	if cfg.Trainer.MinRows != 7 {
		t.Errorf("trainer.min_rows = %d, want the flag's 7 over the file's 99", cfg.Trainer.MinRows)
	}
	if cfg.Trainer.Shadow.ProbationMargin != 0.05 || cfg.Trainer.Shadow.ProbationLabels != 1000 {
		t.Errorf("probation margin from the file, labels from the flag default: %+v", cfg.Trainer.Shadow)
	}
	if cfg.Provision {
		t.Error("provision: false in the file was overwritten by the flag default")
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"kafka-0:9092", "kafka-1:9092"}) {
		t.Errorf("brokers = %v", cfg.Kafka.Brokers)
	}
	if !slices.Equal(cfg.Roles, []string{"features", "monitor", "trainer"}) || !cfg.Webhook.Resolved {
		t.Errorf("defaults of flags the file left out: roles %v, webhook resolved %v", cfg.Roles, cfg.Webhook.Resolved)
	}

	cfg, err = runConfig([]string{"--config", path, "--brokers", "other:9092", "--provision"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Kafka.Brokers, []string{"other:9092"}) || !cfg.Provision || cfg.Trainer.MinRows != 99 {
		t.Errorf("flags given override the file: brokers %v provision %v, min_rows %d (file's 99)", cfg.Kafka.Brokers, cfg.Provision, cfg.Trainer.MinRows)
	}
}

// A misspelt key is an error naming it, never a setting silently ignored.
func TestRunConfigRejectsUnknownKeys(t *testing.T) {
	clearRunEnv(t)
	for body, want := range map[string]string{
		"features:\n  max_keyz: 10\n":                               "max_keyz",
		"roles: [features, scorer]\n":                               "scorer",
		"features:\n  max_keys: many\n":                             "many",
		"kafka:\n  security:\n    sasl:\n      password: hunter2\n": "password",
	} {
		_, err := runConfig([]string{"--config", writeConfig(t, body), "--brokers", "b:9092"})
		if err == nil || !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want a usage error naming %q", body, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error repeats a secret: %v", err)
		}
	}
	if _, err := runConfig([]string{"--config", filepath.Join(t.TempDir(), "missing.yaml")}); err == nil {
		t.Error("a missing --config file was accepted")
	}
}

// Secrets: a flag given wins, then the environment, then the file.
func TestRunConfigSecretPrecedence(t *testing.T) {
	clearRunEnv(t)
	path := writeConfig(t, "kafka:\n  brokers: [b:9092]\nsink:\n  dsn: clickhouse://file:9000\n")
	cfg, err := runConfig([]string{"--config", path})
	if err != nil || cfg.Sink.DSN != "clickhouse://file:9000" {
		t.Fatalf("file only: dsn %q, %v", cfg.Sink.DSN, err)
	}
	t.Setenv(consumers.EnvClickHouseDSN, "clickhouse://env:9000")
	if cfg, _ = runConfig([]string{"--config", path}); cfg.Sink.DSN != "clickhouse://env:9000" {
		t.Errorf("env over file: dsn %q", cfg.Sink.DSN)
	}
	if cfg, _ = runConfig([]string{"--config", path, "--clickhouse", "clickhouse://flag:9000"}); cfg.Sink.DSN != "clickhouse://flag:9000" {
		t.Errorf("flag over env: dsn %q", cfg.Sink.DSN)
	}
}

// The example in deploy/config loads (it is what operators copy).
func TestRunConfigExampleLoads(t *testing.T) {
	clearRunEnv(t)
	cfg, err := runConfig([]string{"--config", "../../deploy/config/driftline.yaml", "--brokers", "b:9092", "--roles", "features"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Features.MaxKeys != 1_000_000 || cfg.Monitor.Cooldown != 2*time.Hour || cfg.Trainer.ClaimTTL != 15*time.Minute ||
		!slices.Equal(cfg.Roles, []string{"features"}) {
		t.Errorf("example config: features %+v monitor cooldown %s trainer claim ttl %s roles %v",
			cfg.Features, cfg.Monitor.Cooldown, cfg.Trainer.ClaimTTL, cfg.Roles)
	}
}

// The trainer reads the sink's ClickHouse: --clickhouse (or the environment)
// overrides the file's trainer.clickhouse.dsn as it does sink.dsn.
func TestRunConfigTrainerClickHouseFollowsTheFlag(t *testing.T) {
	clearRunEnv(t)
	path := writeConfig(t, "kafka:\n  brokers: [b:9092]\ntrainer:\n  clickhouse:\n    dsn: clickhouse://file:9000\n    database: filedb\n")
	cfg, err := runConfig([]string{"--config", path})
	if err != nil || cfg.Trainer.ClickHouse.DSN != "clickhouse://file:9000" || cfg.Trainer.ClickHouse.Database != "filedb" {
		t.Fatalf("file only: %+v, %v", cfg.Trainer.ClickHouse, err)
	}
	cfg, err = runConfig([]string{"--config", path, "--clickhouse", "clickhouse://flag:9000", "--clickhouse-database", "flagdb"})
	if err != nil || cfg.Trainer.ClickHouse.DSN != "clickhouse://flag:9000" || cfg.Sink.DSN != "clickhouse://flag:9000" ||
		cfg.Trainer.ClickHouse.Database != "flagdb" {
		t.Errorf("flags: trainer %+v sink %q, %v", cfg.Trainer.ClickHouse, cfg.Sink.DSN, err)
	}
	t.Setenv(consumers.EnvClickHouseDSN, "clickhouse://env:9000")
	if cfg, _ = runConfig([]string{"--config", path}); cfg.Trainer.ClickHouse.DSN != "clickhouse://env:9000" {
		t.Errorf("env over the file: trainer dsn %q", cfg.Trainer.ClickHouse.DSN)
	}
}
