package features_test

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features"
)

// A restore that waits for a dead instance's open transaction on the
// changelog (read_committed holds until the broker aborts it) is bounded by
// RestoreTimeout, not by the FlushTimeout of the transaction it precedes: it
// once failed the stage after FlushTimeout, and a restart failed again.
func TestSlowRestoreIsBoundedByRestoreTimeoutNotFlushTimeout(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	kc := consumers.KafkaConfig{Brokers: c.ListenAddrs(), Partitions: 1}
	kc.SetDefaults()
	ctx := context.Background()
	if err := consumers.ProvisionTopics(ctx, kc, log); err != nil {
		t.Fatal(err)
	}
	// A dead instance with a long transaction timeout left an open
	// transaction on the changelog.
	topic := consumers.ChangelogTopic(consumers.DefaultFeaturesGroup)
	zombie, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.TransactionalID("zombie"),
		kgo.TransactionTimeout(6*time.Second), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	if err := zombie.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := zombie.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: 0, Key: []byte("c"), Value: []byte{1}}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// do not end it: the process died
	prod, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	defer prod.Close()
	defer zombie.Close()
	ev := `{"event_id":"e1","type":"page_view","ts":"2026-11-23T10:00:00Z","user_id":"u1","session_id":"s1"}`
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: kc.Topics.Clickstream, Key: []byte("u1"), Value: []byte(ev)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	feed := consumers.NewModelFeed(kc, log)
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	go feed.Run(fctx)
	p, err := features.New(features.Config{FlushTimeout: 2 * time.Second, RestoreTimeout: 5 * time.Minute, TransactionTimeout: 10 * time.Second}, kc, feed, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = p.Run(fctx)
	t.Logf("Run returned after %s: %v", time.Since(start).Round(time.Millisecond), err)
	if err != nil {
		t.Errorf("the stage stopped although RestoreTimeout (5m) had not passed")
	}
}
