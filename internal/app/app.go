// Package app assembles a Driftline process from its roles: it builds the
// registry feed, the Watermill publisher and subscriber, the role
// components and the metrics endpoint, and runs them under one errgroup.
// `driftline run` and `driftline demo` both start processes through it, so
// the demo exercises exactly what production runs.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/chsink"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/features"
	"github.com/driftline/driftline/monitors"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

// Role names accepted by --roles.
const (
	RoleFeatures = "features"
	RoleMonitor  = "monitor"
	RoleTrainer  = "trainer"
	RoleSink     = "sink" // needs Config.Sink.DSN (--clickhouse)
)

// AllRoles are the roles this build can run.
var AllRoles = []string{RoleFeatures, RoleMonitor, RoleTrainer, RoleSink}

// Config is one process.
type Config struct {
	Kafka consumers.KafkaConfig `yaml:"kafka"`
	// Roles to run; see AllRoles.
	Roles []string `yaml:"roles"`
	// Provision creates missing topics at start. Default true via flags.
	Provision bool `yaml:"provision"`
	// MetricsAddr serves /metrics, /healthz and /readyz; empty: none.
	MetricsAddr string `yaml:"metrics_addr"`
	// TrainerGroup is the consumer group trainers share. Default "driftline-trainer".
	TrainerGroup string          `yaml:"trainer_group"`
	Features     features.Config `yaml:"features"`
	Monitor      monitors.Config `yaml:"monitor"`
	Trainer      trainers.Config `yaml:"trainer"`
	Sink         chsink.Config   `yaml:"sink"`

	// Webhook forwards alerts to a Slack-compatible webhook when its URL is
	// set; it runs with the monitor role.
	Webhook monitors.WebhookConfig `yaml:"webhook"`
}

// ParseRoles splits and checks a comma-separated role list.
func ParseRoles(s string) ([]string, error) {
	var roles []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		if !slices.Contains(AllRoles, r) {
			return nil, fmt.Errorf("unknown role %q (known: %s)", r, strings.Join(AllRoles, ", "))
		}
		if !slices.Contains(roles, r) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("at least one role is required (known: %s)", strings.Join(AllRoles, ", "))
	}
	return roles, nil
}

// Process is an assembled, not yet running, Driftline process.
type Process struct {
	cfg      Config
	log      *slog.Logger
	reg      *prometheus.Registry
	feed     *consumers.ModelFeed
	features *features.Processor
	sink     *chsink.Sink
	runners  []func(context.Context) error
	closers  []func() error
}

// New assembles a process. reg may be nil for a fresh registry.
func New(cfg Config, log *slog.Logger, reg *prometheus.Registry) (*Process, error) {
	cfg.Kafka.SetDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Roles) == 0 {
		return nil, fmt.Errorf("at least one role is required (known: %s)", strings.Join(AllRoles, ", "))
	}
	if cfg.TrainerGroup == "" {
		cfg.TrainerGroup = "driftline-trainer"
	}
	if cfg.Trainer.Shadow.LeaseGroup == "" {
		// One decision lease per trainer group: the replicas of one group
		// elect one decider among themselves.
		cfg.Trainer.Shadow.LeaseGroup = cfg.TrainerGroup + "-decisions"
	}
	if cfg.Trainer.Features == nil {
		cfg.Trainer.Features = features.PurchasePropensity().Features
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if cfg.Kafka.Metrics == nil {
		cfg.Kafka.Metrics = consumers.NewClientMetrics(reg)
	}
	p := &Process{cfg: cfg, log: log, reg: reg, feed: consumers.NewModelFeed(cfg.Kafka, log)}
	p.runners = append(p.runners, p.feed.Run)
	watchChampions(p.feed, reg)
	if groups := consumerGroups(cfg); len(groups) > 0 {
		lag, err := consumers.NewLagMonitor(consumers.LagConfig{Groups: groups}, cfg.Kafka, log, reg)
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, lag.Run)
	}

	has := func(r string) bool { return slices.Contains(cfg.Roles, r) }
	var pub *kpubsub.Publisher
	if has(RoleMonitor) || has(RoleTrainer) {
		var err error
		pub, err = kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: cfg.Kafka.Brokers, ClientOptions: cfg.Kafka.NamedClientOptions(log, "watermill-publisher")}, wmLogger(log))
		if err != nil {
			return nil, fmt.Errorf("cannot create control-event publisher: %w", err)
		}
		p.closers = append(p.closers, pub.Close)
	}
	if has(RoleFeatures) {
		f, err := features.New(cfg.Features, cfg.Kafka, p.feed, log, reg)
		if err != nil {
			return nil, p.fail(err)
		}
		p.features = f
		p.runners = append(p.runners, f.Run)
	}
	if has(RoleMonitor) {
		m, err := monitors.New(cfg.Monitor, cfg.Kafka, p.feed, pub, log, reg)
		if err != nil {
			return nil, p.fail(err)
		}
		p.runners = append(p.runners, m.Run)
		if cfg.Webhook.URL != "" {
			wh, err := monitors.NewWebhook(cfg.Webhook, cfg.Kafka, log, reg)
			if err != nil {
				return nil, p.fail(err)
			}
			p.runners = append(p.runners, wh.Run)
		}
	}
	if has(RoleTrainer) {
		sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{
			Brokers: cfg.Kafka.Brokers, ConsumerGroup: cfg.TrainerGroup, ClientOptions: cfg.Kafka.NamedClientOptions(log, cfg.TrainerGroup),
		}, wmLogger(log))
		if err != nil {
			return nil, p.fail(fmt.Errorf("cannot create retrain subscriber: %w", err))
		}
		p.closers = append(p.closers, sub.Close)
		// The trainer reads training sets from the sink's ClickHouse
		// (--clickhouse) when one is configured; else it replays the
		// labels topic only.
		tcfg := cfg.Trainer
		if tcfg.ClickHouse.DSN == "" {
			tcfg.ClickHouse.DSN = cfg.Sink.DSN
			if tcfg.ClickHouse.Database == "" {
				tcfg.ClickHouse.Database = cfg.Sink.Database
			}
		}
		w, err := trainers.New(tcfg, cfg.Kafka, p.feed, pub, sub, log, reg)
		if err != nil {
			return nil, p.fail(err)
		}
		p.runners = append(p.runners, w.Run)
		// Shadow scoring and probation (trainers.ShadowConfig); it returns
		// at once when both are off.
		sh, err := trainers.NewShadow(cfg.Trainer, cfg.Kafka, p.feed, pub, log, reg)
		if err != nil {
			return nil, p.fail(err)
		}
		p.runners = append(p.runners, sh.Run)
	}
	if has(RoleSink) {
		s, err := chsink.New(cfg.Sink, cfg.Kafka, log, reg)
		if err != nil {
			return nil, p.fail(err)
		}
		p.sink = s
		p.runners = append(p.runners, s.Run)
		p.closers = append(p.closers, s.Close)
	}
	return p, nil
}

// consumerGroups are the groups of the roles cfg runs, whose lag the
// process reports. The defaults repeat the stages' own (set in their
// setDefaults), since the stages do not export their resolved config.
func consumerGroups(cfg Config) []string {
	or := func(g, def string) string {
		if g != "" {
			return g
		}
		return def
	}
	var gs []string
	for _, r := range cfg.Roles {
		switch r {
		case RoleFeatures:
			gs = append(gs, or(cfg.Features.Group, consumers.DefaultFeaturesGroup))
		case RoleMonitor:
			gs = append(gs, or(cfg.Monitor.Group, "driftline-monitor"))
		case RoleTrainer:
			gs = append(gs, cfg.TrainerGroup)
		case RoleSink:
			gs = append(gs, or(cfg.Sink.Group, chsink.DefaultGroup))
		}
	}
	return gs
}

// watchChampions exports the registry as the process's feed sees it: the
// champion version of each model, an info series naming it, and its holdout
// metrics, so dashboards can split accuracy by model version.
func watchChampions(feed *consumers.ModelFeed, reg prometheus.Registerer) {
	version := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftline_model_champion_version", Help: "Champion version of each model, as this process's registry feed last saw it.",
	}, []string{"model"})
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftline_model_info", Help: "1 for the champion of each model, labelled with its version and training backend.",
	}, []string{"model", "version", "backend"})
	holdout := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftline_model_holdout_metric", Help: "Holdout metrics of the champion measured at training time, by metric (auc, log_loss).",
	}, []string{"model", "version", "metric"})
	reg.MustRegister(version, info, holdout)
	feed.OnChampion(func(v *schemas.ModelVersion) {
		ver := strconv.Itoa(v.Version)
		version.WithLabelValues(v.Model).Set(float64(v.Version))
		info.DeletePartialMatch(prometheus.Labels{"model": v.Model})
		info.WithLabelValues(v.Model, ver, v.Backend).Set(1)
		holdout.DeletePartialMatch(prometheus.Labels{"model": v.Model})
		holdout.WithLabelValues(v.Model, ver, "auc").Set(v.Metrics.AUC)
		holdout.WithLabelValues(v.Model, ver, "log_loss").Set(v.Metrics.LogLoss)
	})
}

func (p *Process) fail(err error) error {
	p.close()
	return err
}

func (p *Process) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			p.log.Warn("close failed", "err", err)
		}
	}
	p.closers = nil
}

// Sink is the ClickHouse sink, nil when the role is not run.
func (p *Process) Sink() *chsink.Sink { return p.sink }

// Feed is the process's registry feed.
func (p *Process) Feed() *consumers.ModelFeed { return p.feed }

// Features is the feature stage, nil when the role is not run.
func (p *Process) Features() *features.Processor { return p.features }

// Registry is the process's metrics registry.
func (p *Process) Registry() *prometheus.Registry { return p.reg }

// Run provisions topics if asked, then runs every role until ctx ends or
// one fails.
func (p *Process) Run(ctx context.Context) error {
	defer p.close()
	if p.cfg.Provision {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := consumers.ProvisionTopics(pctx, p.cfg.Kafka, p.log)
		cancel()
		if err != nil {
			return err
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	if p.cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", p.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("cannot listen for metrics on %s: %w", p.cfg.MetricsAddr, err)
		}
		srv := &http.Server{Handler: p.handler(), ReadHeaderTimeout: 5 * time.Second}
		p.log.Info("serving metrics", "addr", ln.Addr().String())
		g.Go(func() error {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("cannot serve metrics: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	for _, run := range p.runners {
		g.Go(func() error { return run(ctx) })
	}
	p.log.Info("driftline running", "roles", strings.Join(p.cfg.Roles, ","), "kafka", p.cfg.Kafka)
	return g.Wait()
}

func (p *Process) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{Registry: p.reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		select {
		case <-p.feed.Ready():
			_, _ = w.Write([]byte("ready\n"))
		default:
			http.Error(w, "registry not read yet", http.StatusServiceUnavailable)
		}
	})
	return mux
}
