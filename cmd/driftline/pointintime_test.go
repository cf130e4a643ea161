package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
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

	ctx := context.Background()
	// Read once the stage has handled every input: its group's committed
	// offsets reach the inputs' ends, and since offsets commit in the
	// transaction that wrote the outputs, every output is committed then.
	// The first version read while the stage still wrote, until a 2 s poll
	// returned nothing, and once in CI missed a label's vector (not
	// reproduced in 75 runs under load; a poll waiting at an open
	// transaction would explain it). Should a vector be missing, whereIs
	// says whether it was ever written.
	waitCaughtUp(t, addr, "driftline-features", 60*time.Second)
	labelRecs := readTopic(t, addr, schemas.TopicLabels, 0, 2*time.Second)
	featureRecs := readTopic(t, addr, schemas.TopicFeatures, 0, 2*time.Second)
	served := map[string]schemas.FeatureVector{}
	bySession := map[string][]schemas.FeatureVector{}
	for _, r := range featureRecs {
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
			t.Fatalf("label of %s has no served vector (%d labels and %d vectors read; %s)", l.EventID, len(labelRecs), len(featureRecs), whereIs(t, addr, l.EventID))
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

// waitCaughtUp waits until group has committed offsets at the end of every
// partition it consumes: a stage that commits its offsets in the
// transaction of its outputs has then committed everything it will write
// for the inputs so far.
func waitCaughtUp(t *testing.T, addr, group string, timeout time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last string
	checkfor.Until(t, timeout, "group "+group+" caught up", func() bool {
		lags, err := adm.Lag(context.Background(), group)
		if err != nil {
			last = err.Error()
			return false
		}
		l, ok := lags[group]
		if !ok || l.Error() != nil || len(l.Lag) == 0 {
			last = fmt.Sprintf("no lag yet: %v", l.Error())
			return false
		}
		total := l.Lag.Total()
		last = fmt.Sprintf("lag %d", total)
		return total == 0
	})
	t.Logf("group %s caught up (%s)", group, last)
}

// whereIs says where an event id appears, read again from the start of the
// features, labels and dead-letter topics, committed and not: what a
// failure needs to tell a reader's miss from a record never written.
func whereIs(t *testing.T, addr, eventID string) string {
	t.Helper()
	var found []string
	for isoName, iso := range map[string]kgo.IsolationLevel{"read_committed": kgo.ReadCommitted(), "read_uncommitted": kgo.ReadUncommitted()} {
		for _, topic := range []string{schemas.TopicFeatures, schemas.TopicLabels, schemas.TopicDLQ} {
			c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
				kgo.FetchIsolationLevel(iso))
			if err != nil {
				t.Fatal(err)
			}
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				fs := c.PollFetches(ctx)
				cancel()
				n := 0
				fs.EachRecord(func(r *kgo.Record) {
					n++
					if bytes.Contains(r.Value, []byte(`"`+eventID+`"`)) {
						found = append(found, fmt.Sprintf("%s p%d@%d (%s)", r.Topic, r.Partition, r.Offset, isoName))
					}
				})
				if n == 0 {
					break
				}
			}
			c.Close()
		}
	}
	if len(found) == 0 {
		return "found in none of them"
	}
	return "found in " + strings.Join(found, ", ")
}
