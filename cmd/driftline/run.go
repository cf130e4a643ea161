package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/monitors"
	"github.com/driftline/driftline/trainers"
)

func runCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlags("run")
	brokers := fs.String("brokers", os.Getenv(consumers.EnvKafkaBrokers), "Kafka seed brokers, comma-separated (required; default $"+consumers.EnvKafkaBrokers+"); SASL and TLS come from the DRIFTLINE_KAFKA_* environment, never flags")
	roles := fs.String("roles", "features,monitor,trainer", "roles to run, comma-separated: features, monitor, trainer, sink")
	partitions := fs.Int("partitions", 8, "partitions of data topics created when missing")
	provision := fs.Bool("provision", true, "create missing topics at start")
	metrics := fs.String("metrics-addr", "127.0.0.1:9464", "serve /metrics, /healthz, /readyz here; empty disables")
	minRows := fs.Int("min-rows", 2000, "labelled vectors needed to bootstrap v1 and to train a challenger")
	warmUp := fs.Duration("warm-up", 0, "event time after the first labelled vector that trainers never train on, while user state fills")
	txnID := fs.String("transactional-id", "", "feature stage: transactional ID of this instance, stable across its restarts (default <group>-<hostname>-<pid>; never shared by two live processes)")
	sessionTimeout := fs.Duration("session-timeout", 0, "feature stage: consumer group session timeout, how long a killed member keeps its partitions (default 45s)")
	featuresFile := fs.String("features-file", "", "feature stage: YAML feature definitions computed by the window engine (docs/windows.md; default the embedded features/window/purchase_propensity.yaml); the model's features must be defined in it")
	chDSN := fs.String("clickhouse", "", "sink: ClickHouse DSN, native protocol, clickhouse://user:password@host:9000?secure=true (default $DRIFTLINE_CLICKHOUSE_DSN, which keeps the password out of the process list)")
	chDatabase := fs.String("clickhouse-database", "driftline", "sink: ClickHouse database of the tables, created when missing")
	trainerBackend := fs.String("trainer-backend", "cpu", "trainer: cpu, or gpu (the contract trainer of --gpu-command when --gpu-probe succeeds, else cpu)")
	gpuCommand := fs.String("gpu-command", "python3 trainers/gpu/train.py", "trainer: the GPU contract trainer, split on spaces")
	gpuProbe := fs.String("gpu-probe", "nvidia-smi -L", "trainer: command that must succeed for the gpu backend, split on spaces")
	maxTrainings := fs.Int("max-trainings", 1, "trainer: trainings one worker runs at once")
	claimTTL := fs.Duration("claim-ttl", 15*time.Minute, "trainer: how long another replica waits for a claimed retrain request's version before training it itself (longer than the longest training)")
	shadow := fs.Bool("shadow", false, "trainer: score a challenger that passed the gate in shadow; promote it on realised accuracy")
	shadowLabels := fs.Int("shadow-labels", 1000, "trainer: labels a shadow candidate is judged on")
	shadowMargin := fs.Float64("shadow-margin", 0, "trainer: promote the shadow when its AUC >= the champion's minus this")
	probationLabels := fs.Int("probation-labels", 1000, "trainer: labels a new champion is compared with the previous one on; -1 disables probation")
	probationMargin := fs.Float64("probation-margin", 0.02, "trainer: roll back when the new champion's AUC is below the previous one's by more than this")
	webhook := fs.String("alert-webhook", "", "monitor: POST every alert (firing and resolved) to this Slack-compatible webhook URL, with retry (default $DRIFTLINE_ALERT_WEBHOOK, which keeps a secret URL out of the process list)")
	if err := parse(fs, args); err != nil {
		return err
	}
	// Secrets from the environment are read after parsing, never used as
	// flag defaults: the usage text of a mistyped flag would print them.
	if *chDSN == "" {
		*chDSN = os.Getenv(consumers.EnvClickHouseDSN)
	}
	if *webhook == "" {
		*webhook = os.Getenv(consumers.EnvAlertWebhook)
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
	cfg.Trainer.Backend = *trainerBackend
	cfg.Trainer.GPU.Command = strings.Fields(*gpuCommand)
	cfg.Trainer.GPU.Probe = strings.Fields(*gpuProbe)
	cfg.Trainer.MaxConcurrent = *maxTrainings
	cfg.Trainer.ClaimTTL = *claimTTL
	cfg.Trainer.Shadow = trainers.ShadowConfig{Enabled: *shadow, MinLabels: *shadowLabels, Margin: *shadowMargin,
		ProbationLabels: *probationLabels, ProbationMargin: *probationMargin}
	cfg.Webhook = monitors.WebhookConfig{URL: *webhook, Resolved: true}
	cfg.Sink.DSN = *chDSN
	cfg.Sink.Database = *chDatabase
	cfg.Features.TransactionalID = *txnID
	cfg.Features.SessionTimeout = *sessionTimeout
	cfg.Features.FeaturesFile = *featuresFile
	if len(cfg.Kafka.Brokers) == 0 {
		return fmt.Errorf("%w: --brokers is required", errUsage)
	}
	if err := cfg.Kafka.Security.FromEnv(os.Getenv); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	p, err := app.New(cfg, log, nil)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}
