package features

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	rtmetrics "runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// floodBrokerEnv makes the test binary a broker process (TestFloodBrokerProcess).
const floodBrokerEnv = "DRIFTLINE_FLOOD_BROKER"

// TestFloodBrokerProcess is not a test: TestFloodIsBackpressured runs the
// test binary again with floodBrokerEnv set, and this function then serves
// an embedded broker until its stdin closes. In its own process, the
// broker's copy of the flood does not count in the stage's heap.
func TestFloodBrokerProcess(t *testing.T) {
	if os.Getenv(floodBrokerEnv) == "" {
		t.Skip("helper process of TestFloodIsBackpressured")
	}
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fmt.Println("addr", b.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// TestFloodIsBackpressured is issue 3's bad-input case: a producer floods
// the inputs (a backlog of 215 MB, far more than the stage may hold) with
// poison records on every partition; the stage works through it with a
// bounded heap (its fetches are bounded, so the flood waits on the broker as
// lag) and every poison record goes to the DLQ without stalling its
// partition.
func TestFloodIsBackpressured(t *testing.T) {
	if testing.Short() {
		t.Skip("produces and consumes a million records")
	}
	const events, users, poisonEvery = 1_000_000, 5000, 10_007
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodBrokerProcess$")
	cmd.Env = append(os.Environ(), floodBrokerEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stdin.Close(); _ = cmd.Wait() })
	var addr string
	for sc := bufio.NewScanner(stdout); sc.Scan(); {
		if a, ok := strings.CutPrefix(sc.Text(), "addr "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		t.Fatal("broker process printed no address")
	}
	kcfg := consumers.KafkaConfig{Brokers: []string{addr}}
	kcfg.SetDefaults()
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}

	// The flood, produced before the stage starts: a backlog it must not
	// take into memory at once. Poison: invalid JSON and values over the
	// 64 KiB limit, spread over the partitions.
	prod, err := kgo.NewClient(kcfg.Opts(log, kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20))...)
	if err != nil {
		t.Fatal(err)
	}
	huge := `{"event_id":"` + strings.Repeat("x", 200<<10) + `"}`
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	var produced, rawBytes, poison int
	e := schemas.NewEvent()
	var failed atomic.Value
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Store(err)
		}
	}
	for i := range events {
		u := "u-" + strconv.Itoa(i%users)
		e.Reset()
		e.SchemaVersion = schemas.CurrentSchemaVersion
		e.EventID, e.TS, e.UserID, e.SessionID = "e-"+strconv.Itoa(i), t0.Add(time.Duration(i)*100*time.Millisecond).Format(time.RFC3339Nano), u, "s-"+u
		e.Device, e.Country = "mobile", "DE"
		switch i % 10 {
		case 0, 1, 2, 3, 4, 5:
			e.Type, e.ProductID, e.Price = schemas.ProductView, "p-1", 20
		case 6, 7, 8:
			e.Type, e.ProductID, e.Price, e.Quantity = schemas.AddToCart, "p-1", 20, 1
		default:
			e.Type, e.OrderID, e.Amount, e.Currency = schemas.Purchase, "o-"+strconv.Itoa(i), 20, "EUR"
		}
		v := e.AppendJSON(nil)
		if i%poisonEvery == 0 {
			v = []byte(`{"event_id":`)
			if poison%2 == 1 {
				v = []byte(huge)
			}
			poison++
		}
		rawBytes += len(v)
		prod.Produce(ctx, &kgo.Record{Topic: kcfg.Topics.ForType(e.Type), Key: []byte(u), Value: v}, promise)
		produced++
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	prod.Close()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("cannot produce the flood: %v", err)
	}

	reg := prometheus.NewRegistry()
	feed := consumers.NewModelFeed(kcfg, log)
	cfg := Config{SessionTimeout: 6 * time.Second}
	p, err := New(cfg, kcfg, feed, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	base := heapBytes()
	var peak, maxPaused atomic.Uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			if h := heapBytes(); h > peak.Load() {
				peak.Store(h)
			}
			if n := uint64(testutil.ToFloat64(p.m.pausedInputs)); n > maxPaused.Load() {
				maxPaused.Store(n)
			}
			time.Sleep(2 * time.Millisecond) // a sampler, not a wait for a result
		}
	}()
	go func() { _ = feed.Run(ctx) }()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	start := time.Now()
	handled := func() float64 {
		n := 0.0
		for _, c := range p.events {
			n += testutil.ToFloat64(c)
		}
		return n
	}
	checkfor.Until(t, 4*time.Minute, "the stage to work through the flood", func() bool {
		select {
		case err := <-done:
			t.Fatalf("stage stopped during the flood: %v", err)
		default:
		}
		return handled() >= float64(produced)
	})
	took := time.Since(start)
	cancel()
	<-sampled
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	dlq := testutil.ToFloat64(p.m.dlq.WithLabelValues("record"))
	if int(dlq) != poison {
		t.Errorf("dead-lettered %v poison records, want %d", dlq, poison)
	}
	grew := float64(peak.Load()) - float64(base)
	pending := 0
	for _, ps := range p.parts {
		pending += len(ps.queue)
	}
	t.Logf("input partitions paused by alignment: at most %d at once; pending labels at the end: %d", maxPaused.Load(), pending)
	t.Logf("flood of %d records (%d poison, %.0f MB) handled in %s (%.0f records/s); stage heap %.1f MB before, peak %.1f MB (+%.1f MB)",
		produced, poison, float64(rawBytes)/1e6, took.Round(time.Millisecond), float64(produced)/took.Seconds(),
		float64(base)/1e6, float64(peak.Load())/1e6, grew/1e6)
	// Fetches are bounded (2 MiB compressed, every partition served in
	// each), a transaction holds at most 10,000 inputs and their outputs,
	// the state of 5000 users is a few MB, and alignment keeps the topics'
	// event times close, so pending labels stay few: measured +38 MB. A
	// stage that buffered the backlog would grow by its 215 MB; with 50 MB
	// fetches it grew by 185 MB, without alignment by 72 MB (and growing
	// with the flood's length).
	if limit := 64e6; grew > limit {
		t.Errorf("stage heap grew by %.1f MB under the flood, want < %.0f MB: the flood is buffered, not backpressured", grew/1e6, limit/1e6)
	}
}

// heapBytes is the heap found live by the last garbage collection.
func heapBytes() uint64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	return s[0].Value.Uint64()
}
