package monitors

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// restartRig is an embedded kfake broker with the registry holding a
// champion, a producer of feature vectors, and readers of the alerts,
// retrain and reports topics, for monitors started and stopped on it.
type restartRig struct {
	t    *testing.T
	ctx  context.Context
	kcfg consumers.KafkaConfig
	prod *kgo.Client
	rng  *rand.Rand
	sent int // vectors produced, vector i at t0 + i seconds

	alerts, retrain, reports *kgo.Client
}

func newRestartRig(t *testing.T) *restartRig {
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	// One partition: the monitor reads the vectors in the order produced,
	// so the last one produced closes the last evaluation.
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 1}
	kcfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := consumers.ProvisionTopics(ctx, kcfg, quietLog); err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	r := &restartRig{t: t, ctx: ctx, kcfg: kcfg, prod: prod, rng: rand.New(rand.NewPCG(41, 42))}
	reader := func(topic string) *kgo.Client {
		cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	r.alerts, r.retrain, r.reports = reader(kcfg.Topics.Alerts), reader(kcfg.Topics.Retrain), reader(kcfg.Topics.Reports)

	const model = "purchase_propensity"
	names := []string{"price", "mobile"}
	r.produce(kcfg.Topics.Models, schemas.VersionKey(model, 1), schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &schemas.ModelVersion{
		Model: model, Version: 1, Features: names, Weights: []float64{0, 0}, Mean: []float64{0, 0}, Std: []float64{1, 1},
		Reference: schemas.Profile{Rows: 20000, Features: profile.Build(names, reference(r.rng, 20000), 10)},
		Metrics:   schemas.ModelMetrics{AUC: 0.8},
	}})
	r.produce(kcfg.Topics.Models, schemas.AliasKey(model, schemas.AliasChampion), schemas.RegistryRecord{Kind: schemas.RegistryAlias,
		Alias: &schemas.AliasMove{Model: model, Alias: schemas.AliasChampion, Version: 1, Reason: "test", At: t0}})
	return r
}

func (r *restartRig) produce(topic, key string, v any) {
	r.t.Helper()
	val, _ := json.Marshal(v)
	if err := r.prod.ProduceSync(r.ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: val}).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
}

// vectors produces n feature vectors of the given mean price.
func (r *restartRig) vectors(n int, price float64) { r.t.Helper(); r.vectorsOf(n, price, 0.5) }

// vectorsOf produces n feature vectors of the given mean price and share
// of mobile sessions.
func (r *restartRig) vectorsOf(n int, price, mobile float64) {
	r.t.Helper()
	recs := make([]*kgo.Record, 0, n)
	for range n {
		val, _ := json.Marshal(schemas.FeatureVector{Model: "purchase_propensity", EventTime: r.at(r.sent), Values: sample(r.rng, price, mobile)})
		recs = append(recs, &kgo.Record{Topic: r.kcfg.Topics.Features, Key: []byte("u" + strconv.Itoa(r.sent%50)), Value: val})
		r.sent++
	}
	if err := r.prod.ProduceSync(r.ctx, recs...).FirstErr(); err != nil {
		r.t.Fatal(err)
	}
}

func (r *restartRig) at(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }

// monitor starts a monitor (its own registry feed, publisher and metrics,
// the same consumer group every time) and returns its metric of restored
// incidents and a stop function that returns once it has stopped.
func (r *restartRig) monitor() (restored prometheus.Counter, stop func()) {
	r.t.Helper()
	return r.monitorWith(Config{Segments: []string{}}, true)
}

// monitorWith is monitor with a config, and with the retrain policy's
// restore on or off.
func (r *restartRig) monitorWith(cfg Config, restoreRetrains bool) (restored prometheus.Counter, stop func()) {
	r.t.Helper()
	ctx, cancel := context.WithCancel(r.ctx)
	feed := consumers.NewModelFeed(r.kcfg, quietLog)
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: r.kcfg.Brokers}, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	mo, err := New(cfg, r.kcfg, feed, pub, quietLog, prometheus.NewRegistry())
	if err != nil {
		r.t.Fatal(err)
	}
	mo.noRetrainRestore = !restoreRetrains
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = feed.Run(ctx) }()
	go func() { defer wg.Done(); _ = mo.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			_ = pub.Close()
		})
	}
	r.t.Cleanup(stop)
	return mo.m.restored, stop
}

// poll returns what cl has read since the last call, decoded.
func poll[T any](t *testing.T, ctx context.Context, cl *kgo.Client) []T {
	pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	var out []T
	for _, rec := range cl.PollFetches(pctx).Records() {
		var v T
		if err := json.Unmarshal(rec.Value, &v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// untilEvaluated waits until a monitor has evaluated the window ending at
// vector i (its reports of that evaluation are on the reports topic).
func (r *restartRig) untilEvaluated(i int) {
	r.t.Helper()
	checkfor.Until(r.t, 60*time.Second, "an evaluation of the window ending at vector "+strconv.Itoa(i), func() bool {
		for _, rep := range poll[schemas.Report](r.t, r.ctx, r.reports) {
			if rep.Window.To.Equal(r.at(i)) {
				return true
			}
		}
		return false
	})
}

// A monitor that stops while an incident is open hands it to the next one
// through the alerts topic: monitor A fires on a price shift and stops;
// monitor B starts on the same topics and group. When the shift ends, B
// publishes the resolved alert of A's incident (same dedup key and
// incident id); while it goes on, B opens no second incident.
func TestIncidentsSurviveARestart(t *testing.T) {
	for _, clears := range []bool{true, false} {
		name := "breach goes on"
		if clears {
			name = "drift clears"
		}
		t.Run(name, func(t *testing.T) {
			r := newRestartRig(t)
			_, stopA := r.monitor()
			r.vectors(5000, 40)
			r.vectors(3000, 80) // prices double
			r.untilEvaluated(r.sent - 1)
			var fired []schemas.Alert
			checkfor.Until(t, 30*time.Second, "monitor A's firing alert", func() bool {
				fired = append(fired, poll[schemas.Alert](t, r.ctx, r.alerts)...)
				return len(fired) > 0
			})
			stopA()
			if len(fired) != 1 || fired[0].Status != schemas.AlertFiring || fired[0].Feature != "price" {
				t.Fatalf("monitor A: want one firing alert for price, got %+v", fired)
			}
			a := fired[0]
			if reqs := poll[schemas.RetrainRequest](t, r.ctx, r.retrain); len(reqs) != 1 {
				t.Fatalf("monitor A: %d retrain requests, want 1", len(reqs))
			}

			restored, _ := r.monitor()
			price := 80.0
			if clears {
				price = 40
			}
			r.vectors(4000, price) // under the 2 h cooldown since A fired
			r.untilEvaluated(r.sent - 1)
			if got := testutil.ToFloat64(restored); got != 1 {
				t.Errorf("monitor B restored %g incidents, want 1", got)
			}
			after := poll[schemas.Alert](t, r.ctx, r.alerts)
			if !clears {
				if len(after) != 0 {
					t.Errorf("the breach went on: monitor B published %+v, want nothing (A's incident is still open)", after)
				}
			} else {
				if len(after) != 1 {
					t.Fatalf("the drift cleared: monitor B published %d alerts, want the resolved one: %+v", len(after), after)
				}
				res := after[0]
				if res.Status != schemas.AlertResolved || res.DedupKey != a.DedupKey || res.Incident != a.Incident ||
					res.ID != a.Incident+"/resolved" || !res.EventTime.After(a.EventTime) {
					t.Errorf("resolved alert %+v does not close A's incident %+v", res, a)
				}
			}
			if reqs := poll[schemas.RetrainRequest](t, r.ctx, r.retrain); len(reqs) != 0 {
				t.Errorf("monitor B asked for %d retrains for A's incident: %+v", len(reqs), reqs)
			}
		})
	}
}

// Folding the alerts topic: the latest alert of a dedup key decides, a
// resolved alert closes only its own incident, other models, alerts
// without a dedup key and resolved incidents leave nothing open.
func TestFoldAlerts(t *testing.T) {
	const model = "m"
	f := func(version int, key, status, incident string, at int) schemas.Alert {
		return schemas.Alert{ID: incident, Model: model, Version: version, DedupKey: key, Status: status, Incident: incident,
			EventTime: t0.Add(time.Duration(at) * time.Minute)}
	}
	other := f(1, "k3", schemas.AlertFiring, "k3/a", 1)
	other.Model = "other"
	legacy := f(1, "k4", "", "", 2)
	legacy.ID = "k4/legacy"
	alerts := []schemas.Alert{
		f(1, "k1", schemas.AlertFiring, "k1/a", 0),
		f(1, "k2", schemas.AlertFiring, "k2/a", 0),
		f(1, "k2", schemas.AlertResolved, "k2/a", 5),
		f(1, "k1", schemas.AlertResolved, "k1/old", 6), // not k1's open incident
		f(1, "k5", schemas.AlertFiring, "k5/a", 1),
		f(1, "k5", schemas.AlertResolved, "k5/a", 3),
		f(1, "k5", schemas.AlertFiring, "k5/b", 9), // reopened
		f(2, "k1", schemas.AlertFiring, "v2/k1/a", 10),
		f(1, "", schemas.AlertFiring, "nokey", 1),
		other, legacy,
	}
	open := map[int]map[string]*incident{}
	for i := range alerts {
		foldAlert(open, &alerts[i], model)
	}
	want := map[int]map[string]string{1: {"k1": "k1/a", "k4": "k4/legacy", "k5": "k5/b"}, 2: {"k1": "v2/k1/a"}}
	for v, keys := range want {
		if len(open[v]) != len(keys) {
			t.Errorf("version %d: %d open incidents, want %d", v, len(open[v]), len(keys))
		}
		for key, id := range keys {
			in := open[v][key]
			if in == nil || in.id != id || !in.firing || in.key != key {
				t.Errorf("version %d %s: %+v, want open incident %s", v, key, in, id)
			}
		}
	}
	if in := open[1]["k5"]; in != nil && !in.firedAt.Equal(t0.Add(9*time.Minute)) {
		t.Errorf("k5 fired at %s, want its latest firing alert's event time", in.firedAt)
	}
}
