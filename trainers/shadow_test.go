package trainers

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/schemas"
)

// trained is a version of model "m" fitted on the world of sign (see
// labelled), its training window ending at to.
func trained(t *testing.T, rng *rand.Rand, version int, sign float64, to time.Time) *schemas.ModelVersion {
	t.Helper()
	res, err := Train(TrainConfig{}, names, labelled(rng, 3000, sign, to.Add(-3000*time.Minute)), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Version
	v.Model, v.Version = "m", version
	return &v
}

// serve returns n labels of vectors served (and scored) by the version in
// the world of sign, after from, as the feature stage writes them.
func serve(t *testing.T, rng *rand.Rand, served *schemas.ModelVersion, sign float64, from time.Time, n int) []*kgo.Record {
	t.Helper()
	m, err := logreg.ModelFromVersion(served)
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i, l := range labelled(rng, n, sign, from) {
		l.Model, l.Version, l.Score, l.UserID = "m", served.Version, m.Predict(l.Values), "u"+strconv.Itoa(i%20)
		l.EventID = l.UserID + "/" + l.EventTime.Format(time.RFC3339Nano)
		b, _ := json.Marshal(l)
		recs = append(recs, &kgo.Record{Topic: schemas.TopicLabels, Key: []byte(l.UserID), Value: b, Timestamp: l.EventTime})
		fv, _ := json.Marshal(schemas.FeatureVector{Model: "m", EventID: l.EventID, EventTime: l.EventTime, UserID: l.UserID, Values: l.Values})
		recs = append(recs, &kgo.Record{Topic: schemas.TopicFeatures, Key: []byte(l.UserID), Value: fv, Timestamp: l.EventTime})
	}
	return recs
}

// TestShadowPromotesProbationRollsBackShadowRejects walks a model through
// every decision taken on realised accuracy, on a real broker: a shadow
// candidate better than the champion on new labels is promoted; a champion
// that then does worse than the previous one on the labels it served is
// rolled back in one alias move; a shadow candidate worse than the champion
// is cleared. Each decision is an alias move with its evidence.
func TestShadowPromotesProbationRollsBackShadowRejects(t *testing.T) {
	e := newKafkaEnv(t)
	rng := rand.New(rand.NewPCG(5, 5))
	reg := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	v1 := trained(t, rng, 1, 1, t0)                     // the world as it was
	v2 := trained(t, rng, 2, -1, t0.Add(100*time.Hour)) // after the relation flipped
	v3 := trained(t, rng, 3, -1, t0.Add(300*time.Hour)) // the flipped world again
	for _, v := range []*schemas.ModelVersion{v1, v2, v3} {
		if err := reg.PublishVersion(v); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 10*time.Second, "versions", func() bool { return e.feed.LatestVersion("m") == 3 })
	if _, err := reg.MoveAlias("m", schemas.AliasChampion, 1, schemas.DecisionGated, "bootstrap", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MoveAlias("m", schemas.AliasShadow, 2, schemas.DecisionShadowStarted, "gate passed", nil); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the shadow", func() bool { return e.feed.Alias("m", schemas.AliasShadow) != nil })

	cfg := Config{Model: "m", Features: names, Shadow: ShadowConfig{Enabled: true, MinLabels: 300, ProbationLabels: 300, ProbationMargin: 0.05}}
	s, err := NewShadow(cfg, e.kcfg, e.feed, e.pub, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() { done <- s.Run(ctx) }()

	// Labels arrive until the decision is taken (the component reads from
	// the topic's end, so what is produced before it starts is not seen).
	at := t0.Add(200 * time.Hour)
	feedUntil := func(what string, served func() *schemas.ModelVersion, sign float64, cond func() bool) {
		t.Helper()
		checkfor.Until(t, 30*time.Second, what, func() bool {
			if cond() {
				return true
			}
			e.produce(t, serve(t, rng, served(), sign, at, 50)...)
			at = at.Add(50 * time.Minute)
			return cond()
		})
	}
	champion := func() *schemas.ModelVersion { return e.feed.Champion("m") }
	lastMove := func(alias string) schemas.AliasMove {
		h := e.feed.AliasHistory("m", alias)
		return h[len(h)-1]
	}

	// 1. v1 serves in the flipped world; the shadow v2 does far better.
	feedUntil("the shadow promoted", champion, -1, func() bool { return champion().Version == 2 })
	m := lastMove(schemas.AliasChampion)
	if m.Decision != schemas.DecisionShadowPromoted || m.Previous != 1 || m.Evidence["labels"] < 300 ||
		m.Evidence["shadow_auc"] <= m.Evidence["champion_auc"] || m.Evidence["shadow_version"] != 2 {
		t.Errorf("promotion = %+v", m)
	}
	// Shadow predictions went to the predictions topic, marked.
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.ConsumeTopics(e.kcfg.Topics.Predictions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var pred schemas.Prediction
	checkfor.Until(t, 10*time.Second, "a shadow prediction", func() bool {
		pctx, pcancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
		defer pcancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { _ = json.Unmarshal(r.Value, &pred) })
		return pred.EventID != ""
	})
	if !pred.Shadow || pred.Version != 2 || pred.Model != "m" || pred.Score <= 0 || pred.Score >= 1 {
		t.Errorf("shadow prediction %+v", pred)
	}

	// 2. The world flips back while v2 serves: probation compares it with
	// v1 on the same labelled vectors and rolls back, one alias move.
	before := len(e.feed.AliasHistory("m", schemas.AliasChampion))
	feedUntil("the rollback", champion, 1, func() bool { return champion().Version == 1 })
	m = lastMove(schemas.AliasChampion)
	if h := e.feed.AliasHistory("m", schemas.AliasChampion); len(h) != before+1 {
		t.Errorf("rollback took %d alias moves, want 1", len(h)-before)
	}
	if m.Decision != schemas.DecisionRolledBack || m.Previous != 2 || m.Evidence["previous_auc"] < m.Evidence["champion_auc"]+0.05 {
		t.Errorf("rollback = %+v", m)
	}

	// 3. A shadow worse than the champion on the new labels is cleared.
	if _, err := reg.MoveAlias("m", schemas.AliasShadow, 3, schemas.DecisionShadowStarted, "gate passed", nil); err != nil {
		t.Fatal(err)
	}
	feedUntil("the shadow rejected", champion, 1, func() bool { return e.feed.Alias("m", schemas.AliasShadow) == nil })
	m = lastMove(schemas.AliasShadow)
	if m.Decision != schemas.DecisionShadowRejected || m.Version != 0 || m.Previous != 3 || m.Evidence["shadow_auc"] >= m.Evidence["champion_auc"] {
		t.Errorf("shadow rejection = %+v", m)
	}
	if champion().Version != 1 {
		t.Errorf("champion v%d after the rejection, want v1", champion().Version)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("shadow did not stop cleanly: %v", err)
	}
}
