package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// tail counts the committed predictions as they are written.
type tail struct {
	n    atomic.Int64
	stop func()
	done chan struct{}
}

func tailPredictions(t *testing.T, addr string) *tail {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(schemas.TopicPredictions),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tail{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(tl.done)
		defer cl.Close()
		for ctx.Err() == nil {
			tl.n.Add(int64(cl.PollFetches(ctx).NumRecords()))
		}
	}()
	t.Cleanup(func() { tl.stop(); <-tl.done })
	return tl
}

// storefrontStream is a storefront's events on the three input topics, in
// event-time order, each record stamped with its event time (CreateTime, as
// a storefront's producer sets it: the stage merges a partition's three
// topics by it). It returns the records and the number of cart events.
func storefrontStream(t *testing.T, seed uint64, d time.Duration) ([]*kgo.Record, int) {
	t.Helper()
	sim, err := storefront.New(storefront.Config{Seed: seed, SessionsPerMinute: 240})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	carts := 0
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) {
		ts, err := time.Parse(time.RFC3339Nano, e.TS)
		if err != nil {
			t.Fatalf("simulated event %s: %v", e.EventID, err)
		}
		if n := len(recs); n > 0 && ts.Before(recs[n-1].Timestamp) {
			t.Fatalf("the simulator went back in time at event %s: the stream must be in event-time order", e.EventID)
		}
		if schemas.IsCartEvent(e.Type) {
			carts++
		}
		recs = append(recs, &kgo.Record{Topic: schemas.TopicOf(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil), Timestamp: ts})
	})
	return recs, carts
}

// produceInTransactions produces recs in order, in chunks spread over about
// d of wall time, one producer transaction per chunk, and reports the first
// error (nil once every chunk is committed). A read_committed fetch then
// sees a chunk on all its partitions and topics at once or not at all.
func produceInTransactions(t *testing.T, addr string, recs []*kgo.Record, d time.Duration) <-chan error {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.TransactionalID("storefront-"+t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		defer cl.Close()
		ctx := context.Background()
		const chunks = 200
		per := max(1, len(recs)/chunks)
		tick := time.NewTicker(d / chunks)
		defer tick.Stop()
		for i, end := 0, 0; i < len(recs); i = end {
			// A chunk never splits records of one timestamp: the stage
			// orders equal timestamps by input only within a poll.
			end = min(i+per, len(recs))
			for end < len(recs) && recs[end].Timestamp.Equal(recs[end-1].Timestamp) {
				end++
			}
			if err := cl.BeginTransaction(); err != nil {
				errc <- err
				return
			}
			perr := cl.ProduceSync(ctx, recs[i:end]...).FirstErr()
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(perr == nil)); err != nil || perr != nil {
				errc <- errors.Join(perr, err)
				return
			}
			<-tick.C
		}
		errc <- nil
	}()
	return errc
}

// orderedStageConfig is the stage's configuration in the tests that compare
// its outputs with an uninterrupted run. Feature values depend on the order
// in which a partition's clickstream, cart and transaction events are
// handled (a cart event's vector counts the session's clicks handled before
// it), and the stage handles each poll's records of a partition merged in
// event-time order. With one poll taking everything fetched (a batch limit
// above the stream) and one fetch taking every partition's backlog (fetch
// limits above it), and with the inputs produced in transactions that each
// hold a stretch of the stream, every poll is a run of whole stretches: the
// stage handles every partition in event-time order wherever it is killed,
// restarted or rebalanced, and one uninterrupted reading (uninterrupted)
// is well defined. Input alignment is off: it pauses a topic ahead of a
// lagging one, so a fetch would leave that topic out (it bounds memory
// under a flood: features/flood_test.go).
//
// The fetch limit is 512 MiB, so a partition's share (1/32: 16 MiB) holds all
// of any input partition (checkFetchCoversStream). At 64 MiB (2 MiB a
// partition) a restart under load, with a large backlog, once fetched a
// partition's clickstream only in part and its cart events whole: 769 cart
// events were handled before clicks of their session that preceded them.
const orderedStageConfig = `features:
  fetch_max_bytes: 536870912
  max_batch_records: 1000000
  max_input_skew: -1s
`

// orderedFetchMaxBytes is orderedStageConfig's fetch_max_bytes.
const orderedFetchMaxBytes = 512 << 20

// checkFetchCoversStream fails the test when one fetch under
// orderedStageConfig could not hold a whole input partition of recs, or all
// of them: the tests' ordering premise (whole stretches per poll) would not
// hold once a backlog grew that large.
func checkFetchCoversStream(t *testing.T, recs []*kgo.Record) {
	t.Helper()
	type tp struct {
		topic string
		part  int32
	}
	// Keyed records go where Kafka's partitioner (murmur2 of the key) puts
	// them, over the embedded broker's 8 partitions.
	part := kgo.StickyKeyPartitioner(nil)
	per, total := map[tp]int{}, 0
	for _, r := range recs {
		n := len(r.Key) + len(r.Value) + 64 // a record's bytes in a batch, generously
		per[tp{r.Topic, int32(part.ForTopic(r.Topic).Partition(r, 8))}] += n
		total += n
	}
	largest := 0
	for _, n := range per {
		largest = max(largest, n)
	}
	t.Logf("stream: %d bytes, the largest input partition %d (a fetch's partition share %d)", total, largest, orderedFetchMaxBytes/32)
	share := orderedFetchMaxBytes / 32
	for k, n := range per {
		if n >= share {
			t.Fatalf("%s partition %d holds %d bytes of the stream, more than a partition's share of one fetch (%d): raise fetch_max_bytes", k.topic, k.part, n, share)
		}
	}
	if total >= orderedFetchMaxBytes {
		t.Fatalf("the stream is %d bytes, more than one fetch (%d): raise fetch_max_bytes", total, orderedFetchMaxBytes)
	}
}

// runOutput is what the stage wrote for cart events, by event id.
type runOutput struct {
	vectors map[string][]float64
	labels  map[string]labelOutcome
}

// labelOutcome is a label's content that does not depend on the champion
// (the uninterrupted run scores with none).
type labelOutcome struct {
	Label     int
	Reason    string
	LabelTime time.Time
	Values    []float64
}

func outcome(l schemas.Label) labelOutcome {
	return labelOutcome{l.Label, l.Reason, l.LabelTime.UTC(), l.Values}
}

// uninterrupted is what one uninterrupted stage makes of the inputs as the
// broker holds them: each partition handled on its own (partitions are
// independent states), its three topics merged by record timestamp as the
// stage merges a poll (features.Processor.handleMerged: each topic in offset
// order, equal timestamps in input order).
func uninterrupted(t *testing.T, inputs []*kgo.Record) runOutput {
	t.Helper()
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := features.New(features.Config{}, kcfg, consumers.NewModelFeed(kcfg, log), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	order := kcfg.Topics.Inputs()
	byPart := map[int32][][]*kgo.Record{}
	for _, r := range inputs {
		runs := byPart[r.Partition]
		if runs == nil {
			runs = make([][]*kgo.Record, len(order))
			byPart[r.Partition] = runs
		}
		i := slices.Index(order, r.Topic)
		runs[i] = append(runs[i], r)
	}
	want := runOutput{vectors: map[string][]float64{}, labels: map[string]labelOutcome{}}
	for _, runs := range byPart {
		for _, rs := range runs {
			slices.SortFunc(rs, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		}
		idx := make([]int, len(runs))
		for {
			best := -1 // the earliest head; at equal times the first input's
			for i, rs := range runs {
				if idx[i] < len(rs) && (best < 0 || rs[idx[i]].Timestamp.Before(runs[best][idx[best]].Timestamp)) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			p.Process(runs[best][idx[best]])
			idx[best]++
		}
		collect(t, p.TakeOutputs(), want)
	}
	return want
}

// collect decodes a run's vectors and labels into out, and fails on a
// vector or label written twice for one event.
func collect(t *testing.T, recs []*kgo.Record, out runOutput) {
	t.Helper()
	for _, o := range recs {
		switch o.Topic {
		case schemas.TopicFeatures:
			var v schemas.FeatureVector
			if err := json.Unmarshal(o.Value, &v); err != nil {
				t.Fatal(err)
			}
			if _, dup := out.vectors[v.EventID]; dup {
				t.Errorf("event %s: a second committed feature vector", v.EventID)
			}
			out.vectors[v.EventID] = v.Values
		case schemas.TopicLabels:
			var l schemas.Label
			if err := json.Unmarshal(o.Value, &l); err != nil {
				t.Fatal(err)
			}
			if _, dup := out.labels[l.EventID]; dup {
				t.Errorf("event %s: labelled twice", l.EventID)
			}
			out.labels[l.EventID] = outcome(l)
		}
	}
}

// checkExactlyOnce reads the outputs as a read_committed subscriber: one
// prediction and one vector per cart event, no label twice, and the vectors
// and labels equal to an uninterrupted run's.
func checkExactlyOnce(t *testing.T, addr string, produced, carts int) {
	t.Helper()
	var inputs []*kgo.Record
	for _, topic := range []string{schemas.TopicClickstream, schemas.TopicCart, schemas.TopicTransactions} {
		inputs = append(inputs, readTopic(t, addr, topic, 0, 500*time.Millisecond)...)
	}
	if len(inputs) != produced {
		t.Fatalf("the input topics hold %d records, %d produced", len(inputs), produced)
	}
	want := uninterrupted(t, inputs)
	if len(want.vectors) != carts {
		t.Fatalf("the uninterrupted run wrote %d vectors for %d cart events", len(want.vectors), carts)
	}
	var preds []*kgo.Record
	checkfor.Until(t, 90*time.Second, "a committed prediction for every cart event", func() bool {
		preds = readTopic(t, addr, schemas.TopicPredictions, 0, 300*time.Millisecond)
		return len(preds) >= carts
	})
	perEvent := map[string]int{}
	for _, r := range preds {
		var v struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		perEvent[v.EventID]++
	}
	bad := 0
	for id := range want.vectors {
		if perEvent[id] != 1 {
			if bad++; bad <= 5 {
				t.Errorf("cart event %s has %d committed predictions, want exactly 1", id, perEvent[id])
			}
		}
	}
	if bad > 0 || len(perEvent) != carts {
		t.Errorf("%d of %d cart events without exactly one prediction; %d events have predictions", bad, carts, len(perEvent))
	}
	// The stream keeps the storefront contract: a dead letter (a late event
	// above all) would change values, so name the reasons first.
	reasons := map[string]int{}
	for _, r := range readTopic(t, addr, schemas.TopicDLQ, 0, 300*time.Millisecond) {
		reason, _, _ := strings.Cut(consumers.Header(r, schemas.HeaderReason), ":")
		reasons[reason]++
	}
	if len(reasons) > 0 {
		t.Errorf("dead letters by reason %v: the stream keeps the contract, none was expected", reasons)
	}
	got := runOutput{vectors: map[string][]float64{}, labels: map[string]labelOutcome{}}
	collect(t, readTopic(t, addr, schemas.TopicFeatures, 0, 300*time.Millisecond), got)
	collect(t, readTopic(t, addr, schemas.TopicLabels, 0, 300*time.Millisecond), got)
	if len(got.vectors) != carts {
		t.Errorf("%d events have a committed vector, want the %d cart events", len(got.vectors), carts)
	}
	diff := 0
	for id, w := range want.vectors {
		if g, ok := got.vectors[id]; !ok || !slices.Equal(g, w) {
			if diff++; diff <= 5 {
				t.Errorf("event %s: features %v, uninterrupted run %v", id, g, w)
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d vectors differ from the uninterrupted run", diff, len(want.vectors))
	}
	if len(got.labels) != len(want.labels) {
		t.Errorf("%d committed labels, the uninterrupted run wrote %d", len(got.labels), len(want.labels))
	}
	ldiff, positive := 0, 0
	for id, w := range want.labels {
		positive += w.Label
		if g, ok := got.labels[id]; !ok || !reflect.DeepEqual(g, w) {
			if ldiff++; ldiff <= 5 {
				t.Errorf("event %s: label %+v, uninterrupted run %+v", id, g, w)
			}
		}
	}
	if ldiff > 0 {
		t.Errorf("%d of %d labels differ from the uninterrupted run", ldiff, len(want.labels))
	}
	if positive == 0 {
		t.Errorf("no positive label in %d: the stream never joins a purchase to its cart events", len(want.labels))
	}
	t.Logf("%d input records, %d cart events: %d committed predictions; %d of %d vectors and %d of %d labels (%d positive) equal to the uninterrupted run's",
		produced, carts, len(preds), len(want.vectors)-diff, len(want.vectors), len(want.labels)-ldiff, len(want.labels), positive)
}

// syncBuffer is a process's output, readable while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stageProc is a `driftline run --roles features` subprocess.
type stageProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// runStage starts the feature stage with a short session timeout, so a
// killed member's partitions move in seconds.
func runStage(t *testing.T, addr, txnID string, args ...string) *stageProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"run", "--brokers", addr, "--roles", "features", "--metrics-addr", "",
		"--transactional-id", txnID, "--session-timeout", "6s"}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start driftline run: %v", err)
	}
	p := &stageProc{cmd: cmd, out: out, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		p.done <- nil
		if t.Failed() {
			t.Logf("driftline run (%s) output:\n%s", txnID, out.String())
		}
	})
	return p
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *stageProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	p.done <- <-p.done
}

// stop sends SIGTERM and requires a clean exit.
func (p *stageProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("driftline run did not exit cleanly on SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("driftline run did not exit within 30s of SIGTERM\n%s", p.out.String())
	}
}

func (p *stageProc) output() string { return p.out.String() }

var restoreLine = regexp.MustCompile(`state restored from changelog.* records=(\d+)`)

// restoredRecords sums the changelog records a process's log says it
// restored, and logs its restore lines.
func restoredRecords(t *testing.T, out string) int {
	t.Helper()
	n := 0
	for _, m := range restoreLine.FindAllStringSubmatch(out, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
		t.Log(m[0])
	}
	return n
}

// stageConfig writes orderedStageConfig to a file and returns the flags
// that load it.
func stageConfig(t *testing.T) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "driftline.yaml")
	if err := os.WriteFile(f, []byte(orderedStageConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", f}
}

// TestKillNineExactlyOnce kills the feature stage with SIGKILL at five
// random points of a storefront stream (clickstream, cart and transaction
// events), restarting it each time, and stops it with SIGTERM at the end: a
// read_committed reader sees exactly one prediction per cart event, and
// feature vectors and labels equal to an uninterrupted run's.
func TestKillNineExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process five times (~1 min)")
	}
	addr := startBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seedRegistry(t, cl)
	recs, carts := storefrontStream(t, 11, 90*time.Minute)
	checkFetchCoversStream(t, recs)
	if carts < 1000 {
		t.Fatalf("only %d cart events: the stream is too short", carts)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	t.Logf("%d events (%d cart events) produced over 40 s", len(recs), carts)
	produced := produceInTransactions(t, addr, recs, 40*time.Second)
	preds := tailPredictions(t, addr)
	cfg := stageConfig(t)

	run := runStage(t, addr, "eos-test-1", cfg...)
	for kill := range 5 {
		// A random point: somewhere in the next stretch of the stream,
		// mid-batch or between batches, whatever the stage is doing.
		target := int64(float64(carts) * (0.1 + 0.14*float64(kill) + 0.1*rng.Float64()))
		checkfor.Until(t, 90*time.Second, fmt.Sprintf("%d committed predictions before kill %d", target, kill+1), func() bool {
			return preds.n.Load() >= target
		})
		run.kill()
		t.Logf("kill -9 #%d at %d committed predictions", kill+1, preds.n.Load())
		run = runStage(t, addr, "eos-test-1", cfg...)
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 90*time.Second, "every cart event scored after the last restart", func() bool {
		return preds.n.Load() >= int64(carts)
	})
	run.stop(t) // SIGTERM: the last transaction ends, the process exits 0
	if n := restoredRecords(t, run.output()); n == 0 {
		t.Errorf("the last restart restored no state from the changelog:\n%s", run.output())
	}
	checkExactlyOnce(t, addr, len(recs), carts)
}

// TestScaleOutMovesPartitionsAndState runs two stages in one group; one is
// killed mid-stream and its partitions, with their state read back from
// the changelog, move to the other. The outputs equal a single run's.
func TestScaleOutMovesPartitionsAndState(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes and a failover (~40 s)")
	}
	addr := startBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seedRegistry(t, cl)
	recs, carts := storefrontStream(t, 12, 60*time.Minute)
	checkFetchCoversStream(t, recs)
	preds := tailPredictions(t, addr)
	cfg := stageConfig(t)

	a := runStage(t, addr, "scale-a", cfg...)
	b := runStage(t, addr, "scale-b", cfg...)
	// The stream starts once the group is stable with both members: a
	// member that joins later revokes the first one's partitions while it
	// reads a backlog, which this test is not about (the failover below is).
	adm := kadm.NewClient(cl)
	checkfor.Until(t, 60*time.Second, "a stable group of two members", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		gs, err := adm.DescribeGroups(ctx, consumers.DefaultFeaturesGroup)
		if err != nil {
			return false
		}
		g, ok := gs[consumers.DefaultFeaturesGroup]
		return ok && g.Err == nil && g.State == "Stable" && len(g.Members) == 2
	})
	produced := produceInTransactions(t, addr, recs, 25*time.Second)
	// Both members hold partitions once each has restored some state.
	restored := func(p *stageProc) bool { return strings.Contains(p.output(), "state restored from changelog") }
	checkfor.Until(t, 60*time.Second, "both processes to own partitions", func() bool { return restored(a) && restored(b) })
	checkfor.Until(t, 60*time.Second, "a third of the stream scored", func() bool { return preds.n.Load() >= int64(carts/3) })
	a.kill()
	before := restoredRecords(t, b.output())
	t.Logf("killed one of two members at %d committed predictions", preds.n.Load())
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 90*time.Second, "the survivor to score every cart event", func() bool {
		return preds.n.Load() >= int64(carts)
	})
	b.stop(t)
	if after := restoredRecords(t, b.output()); after <= before {
		t.Errorf("the survivor never restored the killed member's state from the changelog:\n%s", b.output())
	}
	checkExactlyOnce(t, addr, len(recs), carts)
}
