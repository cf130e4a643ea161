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
)

func runCmd(ctx context.Context, args []string, log *slog.Logger) error {
	cfg, err := runConfig(args)
	if err != nil {
		return err
	}
	p, err := app.New(cfg, log, nil)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// runConfig is the process configuration of `driftline run`: the --config
// file, the flags given and the environment.
func runConfig(args []string) (app.Config, error) {
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
	chDSN := fs.String("clickhouse", "", "sink, and trainer training sets (else replayed from the labels topic): ClickHouse DSN, native protocol, clickhouse://user:password@host:9000?secure=true (default $DRIFTLINE_CLICKHOUSE_DSN, which keeps the password out of the process list)")
	chDatabase := fs.String("clickhouse-database", "driftline", "sink and trainer: ClickHouse database of the tables, created by the sink when missing")
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
	configFile := fs.String("config", "", "YAML file of the process configuration: every setting of every role under its docs/operations.md key (features.max_keys, monitor.consecutive, ...); a flag given on the command line overrides the file; secrets belong in the environment")
	webhook := fs.String("alert-webhook", "", "monitor: POST every alert (firing and resolved) to this Slack-compatible webhook URL, with retry (default $DRIFTLINE_ALERT_WEBHOOK, which keeps a secret URL out of the process list)")
	if err := parse(fs, args); err != nil {
		return app.Config{}, err
	}
	file, err := loadRunConfig(*configFile)
	if err != nil {
		return app.Config{}, err
	}
	// A flag given on the command line wins; a flag not given fills only
	// what the --config file left out. Secrets from the environment are
	// read after parsing, never used as flag defaults: the usage text of a
	// mistyped flag would print them.
	pick := newFlagOrFile(fs, file)
	cfg := file.cfg
	pick.secret(&cfg.Sink.DSN, "clickhouse", "sink.dsn", *chDSN, os.Getenv(consumers.EnvClickHouseDSN))
	// The trainer reads the sink's ClickHouse (app.New fills what is left
	// empty from sink.*); a flag or the environment overrides its own keys.
	pick.secret(&cfg.Trainer.ClickHouse.DSN, "clickhouse", "trainer.clickhouse.dsn", *chDSN, os.Getenv(consumers.EnvClickHouseDSN))
	if pick.given["clickhouse-database"] {
		cfg.Trainer.ClickHouse.Database = *chDatabase
	}
	pick.secret(&cfg.Webhook.URL, "alert-webhook", "webhook.url", *webhook, os.Getenv(consumers.EnvAlertWebhook))
	if pick.use("roles", "roles") {
		rs, err := app.ParseRoles(*roles)
		if err != nil {
			return cfg, fmt.Errorf("%w: %v", errUsage, err)
		}
		cfg.Roles = rs
	} else if _, err := app.ParseRoles(strings.Join(cfg.Roles, ",")); err != nil {
		return cfg, fmt.Errorf("%w: --config roles: %v", errUsage, err)
	}
	set(pick, &cfg.Kafka.Brokers, "brokers", "kafka.brokers", consumers.ParseBrokers(*brokers))
	set(pick, &cfg.Kafka.Partitions, "partitions", "kafka.partitions", int32(*partitions))
	set(pick, &cfg.Provision, "provision", "provision", *provision)
	set(pick, &cfg.MetricsAddr, "metrics-addr", "metrics_addr", *metrics)
	set(pick, &cfg.Trainer.MinRows, "min-rows", "trainer.min_rows", *minRows)
	set(pick, &cfg.Trainer.WarmUp, "warm-up", "trainer.warm_up", *warmUp)
	set(pick, &cfg.Trainer.Backend, "trainer-backend", "trainer.backend", *trainerBackend)
	set(pick, &cfg.Trainer.GPU.Command, "gpu-command", "trainer.gpu.command", strings.Fields(*gpuCommand))
	set(pick, &cfg.Trainer.GPU.Probe, "gpu-probe", "trainer.gpu.probe", strings.Fields(*gpuProbe))
	set(pick, &cfg.Trainer.MaxConcurrent, "max-trainings", "trainer.max_concurrent", *maxTrainings)
	set(pick, &cfg.Trainer.ClaimTTL, "claim-ttl", "trainer.claim_ttl", *claimTTL)
	set(pick, &cfg.Trainer.Shadow.Enabled, "shadow", "trainer.shadow.enabled", *shadow)
	set(pick, &cfg.Trainer.Shadow.MinLabels, "shadow-labels", "trainer.shadow.min_labels", *shadowLabels)
	set(pick, &cfg.Trainer.Shadow.Margin, "shadow-margin", "trainer.shadow.margin", *shadowMargin)
	set(pick, &cfg.Trainer.Shadow.ProbationLabels, "probation-labels", "trainer.shadow.probation_labels", *probationLabels)
	set(pick, &cfg.Trainer.Shadow.ProbationMargin, "probation-margin", "trainer.shadow.probation_margin", *probationMargin)
	if !file.keys["webhook.resolved"] {
		cfg.Webhook.Resolved = true
	}
	set(pick, &cfg.Sink.Database, "clickhouse-database", "sink.database", *chDatabase)
	set(pick, &cfg.Features.TransactionalID, "transactional-id", "features.transactional_id", *txnID)
	set(pick, &cfg.Features.SessionTimeout, "session-timeout", "features.session_timeout", *sessionTimeout)
	set(pick, &cfg.Features.FeaturesFile, "features-file", "features.features_file", *featuresFile)
	if len(cfg.Kafka.Brokers) == 0 {
		return cfg, fmt.Errorf("%w: --brokers is required", errUsage)
	}
	if err := cfg.Kafka.Security.FromEnv(os.Getenv); err != nil {
		return cfg, fmt.Errorf("%w: %v", errUsage, err)
	}
	return cfg, nil
}
