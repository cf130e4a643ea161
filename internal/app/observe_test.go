package app

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// TestChampionMetricsFollowTheRegistry: the model info, version and holdout
// gauges follow the champion alias through the registry topic, and the
// previous champion's series go away when it moves.
func TestChampionMetricsFollowTheRegistry(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 1}
	kcfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := consumers.ProvisionTopics(ctx, kcfg, quiet); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kcfg.Opts(quiet, kgo.DefaultProduceTopic(kcfg.Topics.Models))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	publish := func(key string, rec schemas.RegistryRecord) {
		v, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(key), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	champion := func(v int, auc float64) {
		publish(schemas.VersionKey("m", v), schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &schemas.ModelVersion{
			Model: "m", Version: v, Backend: "cpu-go-logreg", Metrics: schemas.ModelMetrics{AUC: auc, LogLoss: 0.5},
		}})
		publish(schemas.AliasKey("m", schemas.AliasChampion), schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{
			Model: "m", Alias: schemas.AliasChampion, Version: v,
		}})
	}

	reg := prometheus.NewRegistry()
	feed := consumers.NewModelFeed(kcfg, quiet)
	watchChampions(feed, reg)
	fctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- feed.Run(fctx) }()
	defer func() { stop(); <-done }()

	gauge := func(name string, labels ...string) func() float64 {
		return func() float64 {
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() != name {
					continue
				}
			next:
				for _, m := range mf.GetMetric() {
					for i := 0; i+1 < len(labels); i += 2 {
						found := false
						for _, l := range m.GetLabel() {
							found = found || (l.GetName() == labels[i] && l.GetValue() == labels[i+1])
						}
						if !found {
							continue next
						}
					}
					return m.GetGauge().GetValue()
				}
			}
			return -1
		}
	}
	champion(1, 0.77)
	checkfor.Until(t, 10*time.Second, "champion v1 in the metrics", func() bool {
		return gauge("driftline_model_champion_version", "model", "m")() == 1
	})
	if got := gauge("driftline_model_info", "model", "m", "version", "1", "backend", "cpu-go-logreg")(); got != 1 {
		t.Errorf("model_info of v1 = %v, want 1", got)
	}
	if got := gauge("driftline_model_holdout_metric", "version", "1", "metric", "auc")(); got != 0.77 {
		t.Errorf("holdout auc of v1 = %v, want 0.77", got)
	}
	champion(2, 0.81)
	checkfor.Until(t, 10*time.Second, "champion v2 in the metrics", func() bool {
		return gauge("driftline_model_champion_version", "model", "m")() == 2
	})
	if got := gauge("driftline_model_info", "version", "1")(); got != -1 {
		t.Errorf("model_info still has v1 (%v) after the champion moved", got)
	}
	if got := gauge("driftline_model_holdout_metric", "version", "2", "metric", "auc")(); got != 0.81 {
		t.Errorf("holdout auc of v2 = %v, want 0.81", got)
	}
	if n := testutil.CollectAndCount(reg, "driftline_model_info"); n != 1 {
		t.Errorf("model_info series = %d, want 1", n)
	}
}
