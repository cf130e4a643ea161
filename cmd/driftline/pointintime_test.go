package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

// TestTrainingSetsArePointInTimeCorrect runs the feature stage on a
// simulated storefront and checks what trainers rely on: every label
// carries exactly the vector written to driftline.features when its event
// was scored (not one recomputed when the outcome became known, which for
// many sessions would differ), its record is stamped with that vector's
// event time, and a replay of the labels topic by timestamp returns exactly
// the labels of the range.
func TestTrainingSetsArePointInTimeCorrect(t *testing.T) {
	addr := startBroker(t)
	sim := start(t, "simulate", "--brokers", addr, "--duration", "90m", "--seed", "3")
	if err := sim.cmd.Wait(); err != nil {
		t.Fatalf("simulate: %v\n%s", err, sim.out.String())
	}
	start(t, "run", "--brokers", addr, "--roles", "features", "--metrics-addr", "")

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	count := func(topic string) int64 {
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
		if err != nil {
			return 0
		}
		var n int64
		ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
		return n
	}
	checkfor.Until(t, 60*time.Second, "labels written", func() bool { return count(schemas.TopicLabels) > 1000 })

	read := func(topic string) []*kgo.Record {
		c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The stage writes in transactions (end offsets count commit
		// markers too) and may still be writing: read until a poll of 2 s
		// returns nothing.
		var out []*kgo.Record
		checkfor.Until(t, 60*time.Second, "all of "+topic, func() bool {
			pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			n := len(out)
			c.PollFetches(pctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
			return len(out) > 0 && len(out) == n
		})
		return out
	}
	// Labels first: each label's vector was written before it, so the
	// features read afterwards hold them all.
	labelRecs := read(schemas.TopicLabels)
	served := map[string]schemas.FeatureVector{}
	bySession := map[string][]schemas.FeatureVector{}
	for _, r := range read(schemas.TopicFeatures) {
		var v schemas.FeatureVector
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		served[v.EventID] = v
		bySession[v.SessionID] = append(bySession[v.SessionID], v)
	}
	var labels []schemas.Label
	recomputedWouldDiffer := 0
	from, to := time.Time{}, time.Time{}
	for _, r := range labelRecs {
		var l schemas.Label
		if err := json.Unmarshal(r.Value, &l); err != nil {
			t.Fatal(err)
		}
		labels = append(labels, l)
		v, ok := served[l.EventID]
		if !ok {
			t.Fatalf("label of %s has no served vector", l.EventID)
		}
		if !slices.Equal(l.Values, v.Values) || !l.EventTime.Equal(v.EventTime) {
			t.Fatalf("label of %s carries %v at %s, the served vector was %v at %s", l.EventID, l.Values, l.EventTime, v.Values, v.EventTime)
		}
		if !r.Timestamp.Equal(l.EventTime) {
			t.Fatalf("label record of %s stamped %s, its vector's event time is %s", l.EventID, r.Timestamp, l.EventTime)
		}
		// The session's last vector before the outcome was known: what a
		// recompute at label time would see.
		for _, later := range bySession[l.SessionID] {
			if later.EventTime.After(l.EventTime) && !later.EventTime.After(l.LabelTime) && !slices.Equal(later.Values, l.Values) {
				recomputedWouldDiffer++
				break
			}
		}
		if from.IsZero() || l.EventTime.Before(from) {
			from = l.EventTime
		}
		if l.EventTime.After(to) {
			to = l.EventTime
		}
	}
	if recomputedWouldDiffer == 0 {
		t.Errorf("no label's session changed its vector before the outcome: the test cannot tell served from recomputed vectors")
	}
	t.Logf("%d labels, each with its served vector; for %d a vector recomputed at label time would differ", len(labels), recomputedWouldDiffer)

	// Replay by timestamp: the middle third of the range.
	third := to.Sub(from) / 3
	lo, hi := from.Add(third), from.Add(2*third)
	kcfg := consumers.KafkaConfig{Brokers: []string{addr}}
	kcfg.SetDefaults()
	got, err := trainers.LabelReplay{Kafka: kcfg}.TrainingRows(ctx, "purchase_propensity", lo, hi)
	if err != nil {
		t.Fatal(err)
	}
	var want []schemas.Label
	for _, l := range labels {
		if !l.EventTime.Before(lo) && !l.EventTime.After(hi) {
			want = append(want, l)
		}
	}
	if len(got) == 0 || trainers.Fingerprint(trainers.TrainingOrder(got), "") != trainers.Fingerprint(trainers.TrainingOrder(want), "") {
		t.Errorf("replay of %s..%s returned %d labels, want the %d of the range", lo, hi, len(got), len(want))
	}
}
