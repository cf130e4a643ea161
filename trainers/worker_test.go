package trainers

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
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
	checkfor.Until(t, 10*time.Second, "v2 in the feed", func() bool { return feed.Version("purchase_propensity", 2) != nil })
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

// TestWorkerGPUBackendRecordsWhatTrainedAndADatasetThatReplays: with the
// "gpu" backend configured and the device probe succeeding, the worker
// trains through the contract trainer process (here this test binary, see
// TestMain), records the backend and the dataset fingerprint, and the
// dataset replayed from the labels topic by its recorded time range has
// the same fingerprint (what `driftline train --version` relies on).
func TestWorkerGPUBackendRecordsWhatTrainedAndADatasetThatReplays(t *testing.T) {
	e := newKafkaEnv(t)
	rng := rand.New(rand.NewPCG(11, 11))
	var recs []*kgo.Record
	for i, l := range labelled(rng, 3000, 1, t0) {
		l.Model, l.UserID, l.EventID = "purchase_propensity", "u"+strconv.Itoa(i%50), "e"+strconv.Itoa(i)
		b, _ := json.Marshal(l)
		recs = append(recs, &kgo.Record{Topic: e.kcfg.Topics.Labels, Key: []byte(l.UserID), Value: b, Timestamp: l.EventTime})
	}
	e.produce(t, recs...)
	mark := filepath.Join(t.TempDir(), "ran")
	t.Setenv("DRIFTLINE_CONTRACT_MARK", mark)
	t.Setenv("DRIFTLINE_CONTRACT_TRAINER", "go")

	sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{Brokers: e.kcfg.Brokers, ConsumerGroup: "trainers"}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	cfg := Config{Features: names, MinRows: 2000, Backend: BackendNameGPU, MaxConcurrent: 2,
		GPU: GPUConfig{Command: []string{os.Args[0]}, Probe: []string{"true"}}}
	w, err := New(cfg, e.kcfg, e.feed, e.pub, sub, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	checkfor.Until(t, 30*time.Second, "the bootstrap champion", func() bool { return e.feed.Champion("purchase_propensity") != nil })
	v1 := e.feed.Champion("purchase_propensity")
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("the contract trainer did not run: %v", err)
	}
	if v1.Backend != BackendCPU || v1.Hyperparameters["iterations"] == 0 || v1.Dataset == nil || v1.Dataset.Source != SourceLabelsTopic {
		t.Fatalf("v1 backend %q hyperparameters %v dataset %+v", v1.Backend, v1.Hyperparameters, v1.Dataset)
	}
	if h := e.feed.AliasHistory("purchase_propensity", schemas.AliasChampion); len(h) != 1 || h[0].Decision != schemas.DecisionGated || h[0].Seq != 1 {
		t.Errorf("champion history %+v", h)
	}
	rows, err := LabelReplay{Kafka: e.kcfg}.TrainingRows(e.ctx, "purchase_propensity", v1.Dataset.From, v1.Dataset.To)
	if err != nil {
		t.Fatal(err)
	}
	if got := Fingerprint(TrainingOrder(rows), SourceLabelsTopic); got != *v1.Dataset {
		t.Errorf("replayed dataset %+v, recorded %+v", got, *v1.Dataset)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("worker did not stop cleanly: %v", err)
	}
}

// gatedBackend counts the trainings inside it and holds each until
// released.
type gatedBackend struct {
	mu           sync.Mutex
	inside, most int
	entered      int
	release      chan struct{}
}

func (g *gatedBackend) Fit(ctx context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error) {
	g.mu.Lock()
	g.inside++
	g.entered++
	g.most = max(g.most, g.inside)
	g.mu.Unlock()
	<-g.release
	g.mu.Lock()
	g.inside--
	g.mu.Unlock()
	return CPU{}.Fit(ctx, l2, X, y)
}

func (g *gatedBackend) count() (entered, most int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.entered, g.most
}

// TestWorkerLimitsConcurrentTrainings delivers three requests at once to a
// worker allowed two trainings: the third waits until one finishes.
func TestWorkerLimitsConcurrentTrainings(t *testing.T) {
	e := newKafkaEnv(t)
	w, err := New(Config{Features: names, MinRows: 500, MaxConcurrent: 2}, e.kcfg, e.feed, e.pub, nil, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labelled(rand.New(rand.NewPCG(4, 4)), 1000, 1, t0) {
		w.buf.add(l, 0)
	}
	g := &gatedBackend{release: make(chan struct{})}
	w.backend = g
	errs := make(chan error, 3)
	for i := range 3 {
		req, _ := json.Marshal(schemas.RetrainRequest{IdempotencyKey: "k" + strconv.Itoa(i), Model: "purchase_propensity", Reason: "drift"})
		go func() { errs <- w.handle(newMessage(req)) }()
	}
	checkfor.Until(t, 10*time.Second, "two trainings running", func() bool { n, _ := g.count(); return n == 2 })
	if v := testutil.ToFloat64(w.m.running); v != 2 {
		t.Errorf("running gauge %v, want 2", v)
	}
	g.release <- struct{}{}
	checkfor.Until(t, 10*time.Second, "the third training", func() bool { n, _ := g.count(); return n == 3 })
	close(g.release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, most := g.count(); most != 2 {
		t.Errorf("%d trainings ran at once, limit 2", most)
	}
	checkfor.Until(t, 10*time.Second, "three versions", func() bool { return e.feed.LatestVersion("purchase_propensity") == 3 })
}
