package monitors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

type flakyPub struct {
	message.Publisher
	failTopic string
	fail      bool
}

func (f *flakyPub) Publish(topic string, msgs ...*message.Message) error {
	if f.fail && topic == f.failTopic {
		return errors.New("broker unavailable")
	}
	return f.Publisher.Publish(topic, msgs...)
}

// A retrain request whose publish fails stays pending and goes out once the
// broker is back: its incident is already firing, so no later breach would
// ask again before the cooldown (2 h of event time). It once waited for it.
func TestFailedRetrainPublishIsRetried(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 1000, Persistent: true}, watermill.NopLogger{})
	defer gc.Close()
	pub := &flakyPub{Publisher: gc, failTopic: kcfg.Topics.Retrain, fail: true}
	mo, err := New(Config{}, kcfg, consumers.NewModelFeed(kcfg, log), pub, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"price", "mobile"}
	ref := reference(rng, 20000)
	mo.install(&schemas.ModelVersion{Model: mo.cfg.Model, Version: 1, Features: names,
		Reference: schemas.Profile{Rows: len(ref), Features: profile.Build(names, ref, 10)}, Metrics: schemas.ModelMetrics{AUC: 0.8}})
	retrain, _ := gc.Subscribe(context.Background(), kcfg.Topics.Retrain)
	w := &watched{mo: mo}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	for i := range 5000 {
		w.vector(t, at(i), sample(rng, 40, 0.5))
	}
	i := 5000
	for ; i < 8000; i++ { // shift: the incident fires, the retrain publish fails
		w.vector(t, at(i), sample(rng, 80, 0.5))
	}
	pub.fail = false
	for ; i < 5000+7000; i++ { // breach goes on for ~1h40m more, broker is back
		w.vector(t, at(i), sample(rng, 80, 0.5))
	}
	reqs := drain[schemas.RetrainRequest](retrain)
	t.Logf("retrain requests published in the %s after the failed one: %d", at(i).Sub(at(8000)), len(reqs))
	if len(reqs) == 0 {
		t.Errorf("no retrain request although the breach held after the publish error")
	}
}

// A request still waiting for its publish is not overwritten by another
// incident's request (nor by a budget-held one released meanwhile): the
// pending one goes out naming both incidents.
func TestPendingRetrainIsNotOverwritten(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true}, watermill.NopLogger{})
	defer gc.Close()
	mo, err := New(Config{}, kcfg, consumers.NewModelFeed(kcfg, log), gc, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mo.retrain = &schemas.RetrainRequest{IdempotencyKey: "m/v1/first", Model: "m", Alerts: []string{"incident-1"}}
	mo.retrainAt = t0
	mo.requestRetrain("drift", []string{"incident-2"}, t0.Add(time.Minute), t0.Add(time.Minute))
	if mo.retrain == nil || mo.retrain.IdempotencyKey != "m/v1/first" || len(mo.retrain.Alerts) != 2 || mo.retrain.Alerts[1] != "incident-2" {
		t.Fatalf("pending request overwritten or incident lost: %+v", mo.retrain)
	}
	mo.held = &heldRetrain{reason: "drift", alerts: []string{"incident-3"}, since: t0}
	if mo.incidents == nil {
		mo.incidents = map[string]*incident{}
	}
	mo.incidents["k3"] = &incident{id: "incident-3", firing: true}
	mo.releaseHeld(t0.Add(2 * time.Minute))
	if mo.retrain.IdempotencyKey != "m/v1/first" || mo.held == nil {
		t.Fatalf("a held request replaced the pending one: pending %+v held %+v", mo.retrain, mo.held)
	}
}
