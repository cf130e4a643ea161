package trainers

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

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// countingBackend counts the trainings per process and holds each until
// released, so trainings of two replicas overlap.
type countingBackend struct {
	mu      sync.Mutex
	fits    int
	release chan struct{}
}

func (c *countingBackend) Fit(ctx context.Context, l2 float64, X [][]float64, y []float64) (*Fit, error) {
	c.mu.Lock()
	c.fits++
	c.mu.Unlock()
	<-c.release
	return CPU{}.Fit(ctx, l2, X, y)
}

func (c *countingBackend) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fits
}

// TestTwoReplicasTrainDistinctVersionsOncePerKey runs two trainer replicas
// (each with its own registry feed, as two processes have) against one
// broker and hands both the same retrain requests at once, as a rebalance
// in the middle of a long training does: every request is trained once
// across both replicas, and every version number is used once.
func TestTwoReplicasTrainDistinctVersionsOncePerKey(t *testing.T) {
	e := newKafkaEnv(t)
	rows := labelled(rand.New(rand.NewPCG(8, 8)), 1000, 1, t0)
	var workers []*Worker
	var backends []*countingBackend
	for range 2 {
		feed := consumers.NewModelFeed(e.kcfg, e.log)
		go func() { _ = feed.Run(e.ctx) }()
		<-feed.Ready()
		w, err := New(Config{Features: names, MinRows: 500, MaxConcurrent: 4}, e.kcfg, feed, e.pub, nil, e.log, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range rows {
			w.buf.add(l, 0)
		}
		b := &countingBackend{release: make(chan struct{})}
		w.backend = b
		workers, backends = append(workers, w), append(backends, b)
	}
	const keys = 4
	errs := make(chan error, 2*keys)
	for k := range keys {
		req, _ := json.Marshal(schemas.RetrainRequest{IdempotencyKey: "k" + strconv.Itoa(k), Model: "purchase_propensity", Reason: "drift"})
		for _, w := range workers {
			go func() { errs <- w.handle(newMessage(req)) }()
		}
	}
	// Every key is claimed by one replica, which trains it; the other
	// waits for its version.
	total := func() int { return backends[0].count() + backends[1].count() }
	checkfor.Until(t, 20*time.Second, "one training per key", func() bool { return total() == keys })
	close(backends[0].release)
	close(backends[1].release)
	for range 2 * keys {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := total(); n != keys {
		t.Errorf("%d trainings for %d requests", n, keys)
	}
	feed := workers[0].feed
	checkfor.Until(t, 10*time.Second, "a version per key", func() bool { return len(feed.Versions("purchase_propensity")) == keys })
	seen := map[string]int{}
	for _, v := range feed.Versions("purchase_propensity") {
		if prev, dup := seen[v.RetrainOf]; dup {
			t.Errorf("request %s trained twice: v%d and v%d", v.RetrainOf, prev, v.Version)
		}
		seen[v.RetrainOf] = v.Version
	}
	if len(seen) != keys {
		t.Errorf("versions for %d requests, want %d: %v", len(seen), keys, seen)
	}
	// The duplicates were counted by the replica that waited.
	dups := 0
	for _, w := range workers {
		dups += int(testutil.ToFloat64(w.m.duplicates))
	}
	if dups != keys {
		t.Errorf("%d duplicate deliveries skipped, want %d", dups, keys)
	}
	// Every reservation that won its number is one version; numbers are
	// unique (Versions is keyed by number, so a collision would show as
	// fewer versions than requests above).
	won := map[int]string{}
	for _, m := range feed.AliasHistory("purchase_propensity", schemas.AliasReserved) {
		if _, ok := won[m.Version]; !ok {
			won[m.Version] = m.RetrainOf
		}
	}
	for n, key := range won {
		if v := feed.Version("purchase_propensity", n); v != nil && v.RetrainOf != key {
			t.Errorf("v%d was reserved for %s but trained for %s", n, key, v.RetrainOf)
		}
	}
}

// TestTwoReplicasDecideOnce runs the Shadow component of two trainer
// replicas against one broker: one of them holds the decision lease, so a
// shadow candidate is promoted by one alias move and scored by one
// replica; when that replica stops, the other takes the lease over.
func TestTwoReplicasDecideOnce(t *testing.T) {
	e := newKafkaEnv(t)
	rng := rand.New(rand.NewPCG(12, 12))
	reg := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	v1 := trained(t, rng, 1, 1, t0)
	v2 := trained(t, rng, 2, -1, t0.Add(100*time.Hour))
	for _, v := range []*schemas.ModelVersion{v1, v2} {
		if err := reg.PublishVersion(v); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 10*time.Second, "versions", func() bool { return e.feed.LatestVersion("m") == 2 })
	if _, err := reg.MoveAlias("m", schemas.AliasChampion, 1, schemas.DecisionGated, "bootstrap", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias("m", schemas.AliasShadow, 2, schemas.DecisionShadowStarted, "gate passed", nil); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the shadow", func() bool { return e.feed.Alias("m", schemas.AliasShadow) != nil })

	cfg := Config{Model: "m", Features: names, Shadow: ShadowConfig{Enabled: true, MinLabels: 300, ProbationLabels: -1}}
	var shadows []*Shadow
	var cancels []context.CancelFunc
	dones := make([]chan error, 2)
	for i := range 2 {
		feed := consumers.NewModelFeed(e.kcfg, e.log)
		go func() { _ = feed.Run(e.ctx) }()
		s, err := NewShadow(cfg, e.kcfg, feed, e.pub, e.log, prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		dones[i] = make(chan error, 1)
		go func() { dones[i] <- s.Run(ctx) }()
		shadows, cancels = append(shadows, s), append(cancels, cancel)
	}
	holders := func() (n, who int) {
		for i, s := range shadows {
			if s.lease.Held() {
				n, who = n+1, i
			}
		}
		return n, who
	}
	checkfor.Until(t, 20*time.Second, "one lease holder", func() bool { n, _ := holders(); return n == 1 })

	at := t0.Add(200 * time.Hour)
	checkfor.Until(t, 30*time.Second, "the shadow promoted", func() bool {
		if c := e.feed.Champion("m"); c != nil && c.Version == 2 {
			return true
		}
		e.produce(t, serve(t, rng, e.feed.Champion("m"), -1, at, 50)...)
		at = at.Add(50 * time.Minute)
		return false
	})
	// Let any second decision in flight land before counting.
	e.produce(t, serve(t, rng, v2, -1, at, 300)...)
	promotions, scoredBy := 0, 0
	for _, m := range e.feed.AliasHistory("m", schemas.AliasChampion) {
		if m.Decision == schemas.DecisionShadowPromoted {
			promotions++
		}
	}
	for _, s := range shadows {
		if testutil.ToFloat64(s.m.predictions) > 0 {
			scoredBy++
		}
	}
	if promotions != 1 {
		t.Errorf("%d promotions of the shadow, want 1", promotions)
	}
	if scoredBy != 1 {
		t.Errorf("%d replicas wrote shadow predictions, want 1", scoredBy)
	}
	decided := testutil.ToFloat64(shadows[0].m.decisions.WithLabelValues(schemas.DecisionShadowPromoted)) +
		testutil.ToFloat64(shadows[1].m.decisions.WithLabelValues(schemas.DecisionShadowPromoted))
	if decided != 1 {
		t.Errorf("%v promotion decisions counted across the replicas, want 1", decided)
	}

	// The holder stops: the other replica takes the lease.
	_, who := holders()
	cancels[who]()
	if err := <-dones[who]; err != nil {
		t.Errorf("shadow did not stop cleanly: %v", err)
	}
	checkfor.Until(t, 30*time.Second, "the lease taken over", func() bool { return shadows[1-who].lease.Held() })
}

// TestReserveFirstInTheLogWins: a number another replica reserved first
// is not taken; the loser gets the next one. A claim on a key holds it
// until its TTL, and a reservation that lost its number holds nothing.
func TestReserveFirstInTheLogWins(t *testing.T) {
	e := newKafkaEnv(t)
	other := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	// Another replica's reservation of v1, written straight to the topic
	// (as if this process's feed had not read it when it chose a number).
	old := schemas.AliasMove{Model: "m", Alias: schemas.AliasReserved, Version: 1, Seq: 1, At: time.Now().UTC().Add(-time.Hour),
		Owner: "trainer-other/1", RetrainOf: "k-old"}
	if err := publishJSON(other.pub, e.kcfg.Topics.Models, schemas.AliasMoveKey("m", schemas.AliasReserved, 1), schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &old}); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the other reservation", func() bool { return len(e.feed.AliasHistory("m", schemas.AliasReserved)) == 1 })
	reg := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	n, id, err := reg.Reserve(e.ctx, "m", "k", "trainer-me")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || !ownedBy(id, "trainer-me") {
		t.Errorf("reserved v%d as %s, want v2 as trainer-me/...", n, id)
	}
	// A second reservation of v2 by someone else, later in the log, loses.
	late := schemas.AliasMove{Model: "m", Alias: schemas.AliasReserved, Version: 2, Seq: 2, At: time.Now().UTC(), Owner: "trainer-other/2", RetrainOf: "k2"}
	if err := publishJSON(other.pub, e.kcfg.Topics.Models, schemas.AliasMoveKey("m", schemas.AliasReserved, 2), schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &late}); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the late reservation", func() bool { return len(e.feed.AliasHistory("m", schemas.AliasReserved)) == 3 })
	if h, ok := reg.KeyHolder("m", "k", time.Minute); !ok || h.Owner != id {
		t.Errorf("holder of k = %+v %v, want %s", h, ok, id)
	}
	if _, ok := reg.KeyHolder("m", "k2", time.Minute); ok {
		t.Error("a reservation that lost its number holds its key")
	}
	if _, ok := reg.KeyHolder("m", "k-old", time.Minute); ok {
		t.Error("a claim older than the TTL holds its key")
	}
	if _, ok := reg.KeyHolder("m", "k-old", 2*time.Hour); !ok {
		t.Error("a claim younger than the TTL does not hold its key")
	}
}

// TestWorkerWaitsForAClaimedRequest: a request another replica holds a
// live claim on is not trained here; once that replica's version appears
// it is a duplicate. With the claim expired, the worker trains it.
func TestWorkerWaitsForAClaimedRequest(t *testing.T) {
	e := newKafkaEnv(t)
	w, err := New(Config{Features: names, MinRows: 500}, e.kcfg, e.feed, e.pub, nil, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range labelled(rand.New(rand.NewPCG(15, 15)), 1000, 1, t0) {
		w.buf.add(l, 0)
	}
	b := &countingBackend{release: make(chan struct{})}
	close(b.release)
	w.backend = b
	claim := func(key string, n int, at time.Time) {
		m := schemas.AliasMove{Model: "purchase_propensity", Alias: schemas.AliasReserved, Version: n, Seq: n, At: at, Owner: "trainer-other/" + strconv.Itoa(n), RetrainOf: key}
		if err := publishJSON(e.pub, e.kcfg.Topics.Models, schemas.AliasMoveKey(m.Model, m.Alias, n), schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &m}); err != nil {
			t.Fatal(err)
		}
	}
	claim("held", 1, time.Now().UTC())
	checkfor.Until(t, 10*time.Second, "the claim", func() bool { return len(e.feed.AliasHistory("purchase_propensity", schemas.AliasReserved)) == 1 })
	req, _ := json.Marshal(schemas.RetrainRequest{IdempotencyKey: "held", Model: "purchase_propensity", Reason: "drift"})
	done := make(chan error, 1)
	go func() { done <- w.handle(newMessage(req)) }()
	// The other replica publishes its version for the key.
	theirs := trained(t, rand.New(rand.NewPCG(16, 16)), 1, 1, t0)
	theirs.Model, theirs.RetrainOf = "purchase_propensity", "held"
	if err := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models).PublishVersion(theirs); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b.count() != 0 || testutil.ToFloat64(w.m.duplicates) != 1 {
		t.Errorf("trainings %d, duplicates %v: want 0 and 1", b.count(), testutil.ToFloat64(w.m.duplicates))
	}

	// An expired claim (its holder died) does not stop the training.
	w.cfg.ClaimTTL = time.Minute
	claim("stale", 2, time.Now().UTC().Add(-time.Hour))
	checkfor.Until(t, 10*time.Second, "the stale claim", func() bool { return len(e.feed.AliasHistory("purchase_propensity", schemas.AliasReserved)) == 2 })
	if _, ok := w.reg.KeyHolder("purchase_propensity", "stale", 2*time.Hour); !ok {
		t.Fatal("the stale claim won no number: the test would not test expiry")
	}
	req, _ = json.Marshal(schemas.RetrainRequest{IdempotencyKey: "stale", Model: "purchase_propensity", Reason: "drift"})
	if err := w.handle(newMessage(req)); err != nil {
		t.Fatal(err)
	}
	if b.count() != 1 {
		t.Errorf("trainings %d after an expired claim, want 1", b.count())
	}
	// v2 stays the dead claimant's unused number.
	checkfor.Until(t, 10*time.Second, "the version", func() bool { return e.feed.LatestVersion("purchase_propensity") == 3 })
	if v := e.feed.Version("purchase_propensity", 3); v.RetrainOf != "stale" {
		t.Errorf("v3 trained for %q, want stale", v.RetrainOf)
	}
}
