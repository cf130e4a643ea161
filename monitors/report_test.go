package monitors

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/internal/schematest"
	"github.com/driftline/driftline/schemas"
)

// capture is a Publisher that keeps what it is given, by topic, and
// counts the Publish calls (one per flush is the point).
type capture struct {
	mu    sync.Mutex
	calls map[string]int
	msgs  map[string][]*message.Message
}

func (c *capture) Publish(topic string, msgs ...*message.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[topic]++
	c.msgs[topic] = append(c.msgs[topic], msgs...)
	return nil
}

func (c *capture) Close() error { return nil }

// Every evaluation reports every feature's judged statistic (with its
// threshold and verdict) and PSI beside it, per segment too, and the
// accuracy metrics overall and per segment; the reports are valid against
// the schema documented for subscribers, keyed by model, deterministic in
// id, and published in one produce per flush.
func TestEvaluationsPublishReports(t *testing.T) {
	sch := schematest.Compile(t, schemas.TopicReports)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	pub := &capture{calls: map[string]int{}, msgs: map[string][]*message.Message{}}
	reg := prometheus.NewRegistry()
	mo, err := New(Config{Segments: []string{profile.DimDevice}}, kcfg, consumers.NewModelFeed(kcfg, log), pub, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(21, 22))
	names := []string{"price", "mobile"}
	mo.install(&schemas.ModelVersion{
		Model: mo.cfg.Model, Version: 1, Features: names,
		Reference: schemas.Profile{Rows: 20000, Features: profile.Build(names, reference(rng, 20000), 10)},
		Metrics:   schemas.ModelMetrics{AUC: 0.8},
	})
	feed := func(topic string, v any) {
		b, _ := json.Marshal(v)
		if err := mo.handle(&kgo.Record{Topic: topic, Value: b}); err != nil {
			t.Fatal(err)
		}
	}
	const shiftAt = 6000
	for i := range 10000 {
		at := t0.Add(time.Duration(i) * time.Second)
		price := 40.0
		if i >= shiftAt {
			price = 80 // the price doubles; the mobile share does not move
		}
		x := sample(rng, price, 0.5)
		dev := "desktop"
		if x[1] == 1 {
			dev = "mobile"
		}
		feed(kcfg.Topics.Features, schemas.FeatureVector{Model: mo.cfg.Model, EventTime: at, Values: x, Segments: schemas.Segments{Device: dev}})
		s := rng.Float64()
		l := 0
		if rng.Float64() < s {
			l = 1
		}
		feed(kcfg.Topics.Labels, schemas.Label{Model: mo.cfg.Model, Version: 1, EventTime: at, LabelTime: at, Score: s, Label: l, Segments: schemas.Segments{Device: dev}})
	}
	if n := len(pub.msgs[kcfg.Topics.Reports]); n != 0 {
		t.Fatalf("%d reports published before a flush (under the %d pending cap)", n, maxPendingReports)
	}
	mo.flushReports()
	if c := pub.calls[kcfg.Topics.Reports]; c != 1 {
		t.Errorf("%d publish calls for one flush, want 1", c)
	}
	msgs := pub.msgs[kcfg.Topics.Reports]
	if got := testutil.ToFloat64(mo.m.reports.WithLabelValues("published")); int(got) != len(msgs) || got == 0 {
		t.Errorf("reports_total{published} = %v, %d published", got, len(msgs))
	}
	ids := map[string]bool{}
	type key struct{ kind, segment, feature, stat string }
	count := map[key]int{}
	var priceBefore, priceAfter []float64
	for _, m := range msgs {
		if k := m.Metadata.Get(kpubsub.KeyMetadata); k != mo.cfg.Model {
			t.Fatalf("report keyed %q, want the model", k)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Payload))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Fatalf("report %s does not match the schema: %v", m.Payload, err)
		}
		var r schemas.Report
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		if ids[r.ID] {
			t.Errorf("report id %s twice", r.ID)
		}
		ids[r.ID] = true
		count[key{r.Kind, r.Segment, r.Feature, r.Statistic}]++
		judged := r.Statistic == r.Method
		if judged != (r.Comparison != "") {
			t.Errorf("judged %v but comparison %q: %s", judged, r.Comparison, m.Payload)
		}
		if r.Version != 1 || r.Samples == 0 || r.Window.From.After(r.Window.To) || !r.EventTime.Equal(r.Window.To) {
			t.Errorf("report %s", m.Payload)
		}
		if r.Kind == schemas.AlertDrift && r.Segment == "" && r.Feature == "price" && judged {
			if r.Breached != (r.Value > r.Threshold) {
				t.Errorf("breached %v for %v > %v", r.Breached, r.Value, r.Threshold)
			}
			if r.Window.From.After(t0.Add(shiftAt * time.Second)) {
				priceAfter = append(priceAfter, r.Value)
			} else if r.Window.To.Before(t0.Add(shiftAt * time.Second)) {
				priceBefore = append(priceBefore, r.Value)
			}
		}
	}
	// 2000-vector windows evaluated every 250 vectors from vector 2000:
	// 33 evaluations of all traffic.
	for _, k := range []key{
		{schemas.AlertDrift, "", "price", "wasserstein"}, {schemas.AlertDrift, "", "price", "psi"},
		{schemas.AlertDrift, "", "mobile", "jensenshannon"}, {schemas.AlertDrift, "", "mobile", "psi"},
	} {
		if count[k] != 33 {
			t.Errorf("%+v: %d reports, want one per evaluation (33)", k, count[k])
		}
	}
	for _, k := range []key{
		{schemas.AlertDrift, "device=mobile", "price", "wasserstein"}, {schemas.AlertAccuracy, "", "", "roc_auc"},
		{schemas.AlertAccuracy, "", "", "log_loss"}, {schemas.AlertAccuracy, "device=mobile", "", "roc_auc"},
		{schemas.AlertAccuracy, "device=desktop", "", "brier"},
	} {
		if count[k] == 0 {
			t.Errorf("no %+v report; have %v", k, count)
		}
	}
	if len(priceBefore) == 0 || len(priceAfter) == 0 || slicesMax(priceBefore) >= slicesMin(priceAfter) {
		t.Errorf("price Wasserstein before the shift %v, after it %v: want every one after above every one before", priceBefore, priceAfter)
	}
}

func slicesMax(s []float64) float64 {
	m := s[0]
	for _, v := range s {
		m = max(m, v)
	}
	return m
}

func slicesMin(s []float64) float64 {
	m := s[0]
	for _, v := range s {
		m = min(m, v)
	}
	return m
}

// The running Monitor, on a real (embedded kfake) broker: the champion
// comes from the registry topic, vectors from the features topic, and the
// reports of its evaluations land on driftline.reports keyed by model, one
// record per statistic, with deterministic distinct ids.
func TestRunPublishesReportsToKafka(t *testing.T) {
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 2}
	kcfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := consumers.ProvisionTopics(ctx, kcfg, quietLog); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produce := func(topic, key string, v any) {
		t.Helper()
		val, _ := json.Marshal(v)
		if err := prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const model = "purchase_propensity"
	rng := rand.New(rand.NewPCG(31, 32))
	names := []string{"price", "mobile"}
	produce(kcfg.Topics.Models, schemas.VersionKey(model, 1), schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &schemas.ModelVersion{
		Model: model, Version: 1, Features: names, Weights: []float64{0, 0}, Mean: []float64{0, 0}, Std: []float64{1, 1},
		Reference: schemas.Profile{Rows: 20000, Features: profile.Build(names, reference(rng, 20000), 10)},
		Metrics:   schemas.ModelMetrics{AUC: 0.8},
	}})
	produce(kcfg.Topics.Models, schemas.AliasKey(model, schemas.AliasChampion), schemas.RegistryRecord{Kind: schemas.RegistryAlias,
		Alias: &schemas.AliasMove{Model: model, Alias: schemas.AliasChampion, Version: 1, Reason: "test", At: t0}})

	feed := consumers.NewModelFeed(kcfg, quietLog)
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: kcfg.Brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	reg := prometheus.NewRegistry()
	mo, err := New(Config{Segments: []string{}}, kcfg, feed, pub, quietLog, reg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = feed.Run(ctx) }()
	go func() { defer wg.Done(); _ = mo.Run(ctx) }()
	defer wg.Wait()
	defer cancel()

	recs := make([]*kgo.Record, 0, 3000)
	for i := range 3000 {
		val, _ := json.Marshal(schemas.FeatureVector{Model: model, EventTime: t0.Add(time.Duration(i) * time.Second), Values: sample(rng, 40, 0.5)})
		recs = append(recs, &kgo.Record{Topic: kcfg.Topics.Features, Key: []byte("u" + strconv.Itoa(i%50)), Value: val})
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	// 3000 vectors: evaluations at 2000, 2250, ..., 3000 (5), each
	// reporting price (wasserstein, psi) and mobile (jensenshannon, psi).
	const want = 5 * 4
	cons, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(kcfg.Topics.Reports),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []*kgo.Record
	checkfor.Until(t, 30*time.Second, "the reports of 5 evaluations on the reports topic", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer pcancel()
		got = append(got, cons.PollFetches(pctx).Records()...)
		return len(got) >= want
	})
	ids := map[string]bool{}
	stats := map[string]int{}
	for _, r := range got {
		var rep schemas.Report
		if err := json.Unmarshal(r.Value, &rep); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != model || rep.Model != model || rep.Version != 1 || rep.Samples != 2000 {
			t.Errorf("report keyed %q: %s", r.Key, r.Value)
		}
		ids[rep.ID] = true
		stats[rep.Feature+"/"+rep.Statistic]++
	}
	if len(got) != want || len(ids) != want {
		t.Errorf("%d reports with %d distinct ids, want %d", len(got), len(ids), want)
	}
	for _, k := range []string{"price/wasserstein", "price/psi", "mobile/jensenshannon", "mobile/psi"} {
		if stats[k] != 5 {
			t.Errorf("%s: %d reports, want 5 (%v)", k, stats[k], stats)
		}
	}
}
