package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
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
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// readCommitted reads the committed records of a topic, as a subscriber
// with isolation.level=read_committed sees them, from the start until idle
// for quiet (or, with want > 0, until it has at least want).
func readCommitted(t *testing.T, addr, topic string, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for {
		// Until the first record arrives the wait covers connecting and the
		// first fetch, which take far longer than quiet on a loaded machine
		// (a 300 ms first poll once read an empty topic of 20k records).
		wait := quiet
		if len(out) == 0 {
			wait = max(quiet, 5*time.Second)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r); n++ })
		if n == 0 || (want > 0 && len(out) >= want) {
			return out
		}
	}
}

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

// cartStream is a storefront's cart events (the topic whose order alone
// decides every feature, so an uninterrupted run is well defined whatever
// the stage's fetch interleaving), as records to produce.
func cartStream(t *testing.T, seed uint64, d time.Duration) []*kgo.Record {
	t.Helper()
	sim, err := storefront.New(storefront.Config{Seed: seed, SessionsPerMinute: 240})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) {
		if schemas.IsCartEvent(e.Type) {
			recs = append(recs, &kgo.Record{Topic: schemas.TopicCart, Key: []byte(e.UserID), Value: e.AppendJSON(nil)})
		}
	})
	return recs
}

// produceOver produces recs in order, spread over about d of wall time,
// and reports the first error (nil once every record is acknowledged).
func produceOver(cl *kgo.Client, recs []*kgo.Record, d time.Duration) <-chan error {
	errc := make(chan error, 1)
	go func() {
		const chunks = 200
		per := max(1, len(recs)/chunks)
		tick := time.NewTicker(d / chunks)
		defer tick.Stop()
		for i := 0; i < len(recs); i += per {
			if err := cl.ProduceSync(context.Background(), recs[i:min(i+per, len(recs))]...).FirstErr(); err != nil {
				errc <- err
				return
			}
			<-tick.C
		}
		errc <- nil
	}()
	return errc
}

// uninterrupted is what one uninterrupted stage makes of the cart topic as
// the broker holds it: the feature values of every cart event, by event id.
// Partitions are independent states, each read in offset order.
func uninterrupted(t *testing.T, cart []*kgo.Record) map[string][]float64 {
	t.Helper()
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := features.New(features.Config{}, kcfg, consumers.NewModelFeed(kcfg, log), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	byPart := map[int32][]*kgo.Record{}
	for _, r := range cart {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	want := map[string][]float64{}
	for _, recs := range byPart {
		slices.SortFunc(recs, func(a, b *kgo.Record) int { return int(a.Offset - b.Offset) })
		for _, r := range recs {
			p.Process(r)
		}
		for _, o := range p.TakeOutputs() {
			if o.Topic != schemas.TopicFeatures {
				continue
			}
			var v schemas.FeatureVector
			if err := json.Unmarshal(o.Value, &v); err != nil {
				t.Fatal(err)
			}
			want[v.EventID] = v.Values
		}
	}
	return want
}

// checkExactlyOnce reads the outputs as a read_committed subscriber: one
// prediction and one vector per cart event, no label twice, and the vectors
// equal to an uninterrupted run's.
func checkExactlyOnce(t *testing.T, addr string, produced int) {
	t.Helper()
	cart := readCommitted(t, addr, schemas.TopicCart, 0, 500*time.Millisecond)
	if len(cart) != produced {
		t.Fatalf("cart topic holds %d records, %d produced", len(cart), produced)
	}
	want := uninterrupted(t, cart)
	var preds, vecs []*kgo.Record
	checkfor.Until(t, 90*time.Second, "a committed prediction for every cart event", func() bool {
		preds = readCommitted(t, addr, schemas.TopicPredictions, 0, 300*time.Millisecond)
		return len(preds) >= len(want)
	})
	vecs = readCommitted(t, addr, schemas.TopicFeatures, 0, 300*time.Millisecond)
	count := func(recs []*kgo.Record) map[string]int {
		n := map[string]int{}
		for _, r := range recs {
			var v struct {
				EventID string `json:"event_id"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			n[v.EventID]++
		}
		return n
	}
	for name, got := range map[string]map[string]int{"prediction": count(preds), "feature vector": count(vecs)} {
		bad := 0
		for id := range want {
			if got[id] != 1 {
				if bad++; bad <= 5 {
					t.Errorf("cart event %s has %d committed %ss, want exactly 1", id, got[id], name)
				}
			}
		}
		if len(got) != len(want) {
			t.Errorf("%d events have a %s, want the %d cart events", len(got), name, len(want))
		}
		if bad > 0 {
			t.Errorf("%d of %d cart events without exactly one %s", bad, len(want), name)
		}
	}
	diff := 0
	for _, r := range vecs {
		var v schemas.FeatureVector
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatal(err)
		}
		if w, ok := want[v.EventID]; !ok || !slices.Equal(v.Values, w) {
			if diff++; diff <= 5 {
				t.Errorf("event %s: features %v, uninterrupted run %v", v.EventID, v.Values, w)
			}
		}
	}
	if diff > 0 {
		t.Errorf("%d of %d vectors differ from the uninterrupted run", diff, len(vecs))
	}
	labels := count(readCommitted(t, addr, schemas.TopicLabels, 0, 300*time.Millisecond))
	for id, n := range labels {
		if n > 1 {
			t.Errorf("event %s labelled %d times", id, n)
		}
	}
	t.Logf("%d cart events: %d committed predictions, %d vectors equal to the uninterrupted run, %d labels", len(want), len(preds), len(vecs)-diff, len(labels))
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
func runStage(t *testing.T, addr, txnID string) *stageProc {
	t.Helper()
	cmd := exec.Command(binary, "run", "--brokers", addr, "--roles", "features", "--metrics-addr", "",
		"--transactional-id", txnID, "--session-timeout", "6s")
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

// TestKillNineExactlyOnce kills the feature stage with SIGKILL at five
// random points of a stream, restarting it each time, and stops it with
// SIGTERM at the end: a read_committed reader sees exactly one prediction
// per cart event and feature values equal to an uninterrupted run.
func TestKillNineExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a process five times (~1 min)")
	}
	addr := startBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seedRegistry(t, cl)
	recs := cartStream(t, 11, 90*time.Minute)
	if len(recs) < 1000 {
		t.Fatalf("only %d cart events: the stream is too short", len(recs))
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	t.Logf("%d cart events produced over 40 s", len(recs))
	produced := produceOver(cl, recs, 40*time.Second)
	preds := tailPredictions(t, addr)

	run := runStage(t, addr, "eos-test-1")
	for kill := range 5 {
		// A random point: somewhere in the next stretch of the stream,
		// mid-batch or between batches, whatever the stage is doing.
		target := int64(float64(len(recs)) * (0.1 + 0.14*float64(kill) + 0.1*rng.Float64()))
		checkfor.Until(t, 90*time.Second, fmt.Sprintf("%d committed predictions before kill %d", target, kill+1), func() bool {
			return preds.n.Load() >= target
		})
		run.kill()
		t.Logf("kill -9 #%d at %d committed predictions", kill+1, preds.n.Load())
		run = runStage(t, addr, "eos-test-1")
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 90*time.Second, "every cart event scored after the last restart", func() bool {
		return preds.n.Load() >= int64(len(recs))
	})
	run.stop(t) // SIGTERM: the last transaction ends, the process exits 0
	if n := restoredRecords(t, run.output()); n == 0 {
		t.Errorf("the last restart restored no state from the changelog:\n%s", run.output())
	}
	checkExactlyOnce(t, addr, len(recs))
}

// TestScaleOutMovesPartitionsAndState runs two stages in one group; one is
// killed mid-stream and its partitions, with their state read back from
// the changelog, move to the other. The outputs equal a single run's.
func TestScaleOutMovesPartitionsAndState(t *testing.T) {
	if testing.Short() {
		t.Skip("two processes and a failover (~40 s)")
	}
	addr := startBroker(t)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	seedRegistry(t, cl)
	recs := cartStream(t, 12, 60*time.Minute)
	produced := produceOver(cl, recs, 25*time.Second)
	preds := tailPredictions(t, addr)

	a := runStage(t, addr, "scale-a")
	b := runStage(t, addr, "scale-b")
	// Both members hold partitions once each has restored some state.
	restored := func(p *stageProc) bool { return strings.Contains(p.output(), "state restored from changelog") }
	checkfor.Until(t, 60*time.Second, "both processes to own partitions", func() bool { return restored(a) && restored(b) })
	checkfor.Until(t, 60*time.Second, "a third of the stream scored", func() bool { return preds.n.Load() >= int64(len(recs)/3) })
	a.kill()
	before := restoredRecords(t, b.output())
	t.Logf("killed one of two members at %d committed predictions", preds.n.Load())
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 90*time.Second, "the survivor to score every cart event", func() bool {
		return preds.n.Load() >= int64(len(recs))
	})
	b.stop(t)
	if after := restoredRecords(t, b.output()); after <= before {
		t.Errorf("the survivor never restored the killed member's state from the changelog:\n%s", b.output())
	}
	checkExactlyOnce(t, addr, len(recs))
}
