package trainers

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// TestWorkerOnKafka runs the trainer role against a real Kafka-protocol
// broker: it bootstraps v1 from the labels topic by itself, trains once per
// idempotency key however often a request is delivered, and puts a request
// it cannot read in the poison queue.
func TestWorkerOnKafka(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 4}
	kcfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...), kgo.ConsumeTopics(kcfg.Topics.RetrainPoison()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rng := rand.New(rand.NewPCG(9, 9))
	for i, l := range labelled(rng, 3000, 1, t0) {
		// Keyed by user as the feature stage keys them, so every partition
		// advances through event time.
		l.Model, l.UserID = "purchase_propensity", "u"+strconv.Itoa(i%50)
		b, _ := json.Marshal(l)
		cl.Produce(ctx, &kgo.Record{Topic: kcfg.Topics.Labels, Key: []byte(l.UserID), Value: b}, nil)
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	feed := consumers.NewModelFeed(kcfg, log)
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: kcfg.Brokers}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{Brokers: kcfg.Brokers, ConsumerGroup: "trainers"}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	w, err := New(Config{Features: names, MinRows: 2000}, kcfg, feed, pub, sub, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = feed.Run(ctx) }()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	checkfor.Until(t, 30*time.Second, "the bootstrap champion", func() bool { return feed.Champion("purchase_propensity") != nil })
	v1 := feed.Champion("purchase_propensity")
	if v1.Version != 1 || v1.Parent != 0 || v1.RetrainOf != "purchase_propensity/bootstrap" || v1.Backend == "" {
		t.Errorf("bootstrap version = %+v", v1)
	}

	req := schemas.RetrainRequest{IdempotencyKey: "purchase_propensity/v1/incident-1", Model: "purchase_propensity", FromVersion: 1, Reason: "drift"}
	for range 2 {
		if err := publishJSON(pub, kcfg.Topics.Retrain, req.Model, req); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 30*time.Second, "the duplicate delivery to be skipped", func() bool { return testutil.ToFloat64(w.m.duplicates) == 1 })
	if vs := feed.Versions("purchase_propensity"); len(vs) != 2 || vs[1].RetrainOf != req.IdempotencyKey || vs[1].Parent != 1 {
		t.Fatalf("want v1 and one v2 trained for the request, got %d versions", len(vs))
	}

	// A request that is not JSON fails every retry and is kept in the
	// poison queue with the reason.
	if err := pub.Publish(kcfg.Topics.Retrain, newMessage([]byte("not json"))); err != nil {
		t.Fatal(err)
	}
	var poisoned *kgo.Record
	checkfor.Until(t, 30*time.Second, "the poison queue", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer pcancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { poisoned = r })
		return poisoned != nil
	})
	if string(poisoned.Value) != "not json" || consumers.Header(poisoned, "reason_poisoned") == "" {
		t.Errorf("poisoned record %q headers %v", poisoned.Value, poisoned.Headers)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("worker did not stop cleanly: %v", err)
	}
}
