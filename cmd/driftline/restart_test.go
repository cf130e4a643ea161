package main

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/demo"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// seedRegistry produces the fixture champion to the registry topic.
func seedRegistry(t *testing.T, cl *kgo.Client) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "models", "kcat_registry.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "\t")
		rec := &kgo.Record{Topic: schemas.TopicModels, Key: []byte(k), Value: []byte(v)}
		if err := cl.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRestartLeavesNoCartEventUnscored stops `driftline run` mid-stream and
// starts it again: every cart event is scored exactly once as a
// read_committed subscriber sees it. After a clean stop (SIGTERM) the last
// transaction committed; after kill -9 the open one is aborted (here by the
// transaction timeout: the restarted process has a new default
// transactional ID, so it cannot fence its predecessor) and its inputs are
// handled again from the last commit.
func TestRestartLeavesNoCartEventUnscored(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
	}{
		{"sigterm", syscall.SIGTERM},
		{"sigkill", syscall.SIGKILL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startBroker(t)
			kcfg := consumers.KafkaConfig{Brokers: []string{addr}}
			kcfg.SetDefaults()
			cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ProducerLinger(2*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			seedRegistry(t, cl)

			sim, err := storefront.New(storefront.Config{Seed: 42, SessionsPerMinute: 120})
			if err != nil {
				t.Fatal(err)
			}
			// Produce 60 event-minutes over ~6 s, while run is stopped and
			// restarted under it.
			prod := demo.NewProducer(cl, kcfg.Topics, demo.Pace{Speed: 10 * time.Minute, Step: 10 * time.Second})
			produced := make(chan error, 1)
			go func() {
				err := prod.Advance(context.Background(), sim, sim.Now().Add(60*time.Minute))
				if err == nil {
					err = cl.Flush(context.Background())
				}
				produced <- err
			}()

			run := start(t, "run", "--brokers", addr, "--roles", "features", "--metrics-addr", "", "--session-timeout", "6s")
			checkfor.Until(t, 30*time.Second, "the first predictions", func() bool {
				return len(readTopic(t, addr, schemas.TopicPredictions, 1, 200*time.Millisecond)) > 0
			})
			if tc.sig == syscall.SIGTERM {
				run.stop(t)
			} else {
				_ = run.cmd.Process.Signal(tc.sig)
				_ = run.cmd.Wait()
			}
			select {
			case err := <-produced:
				t.Fatalf("production finished before the stop (err %v): the stop was not mid-stream", err)
			default:
			}
			start(t, "run", "--brokers", addr, "--roles", "features", "--metrics-addr", "", "--session-timeout", "6s")
			if err := <-produced; err != nil {
				t.Fatal(err)
			}

			// The cart events are whatever reached the topic.
			cart := map[string]bool{}
			for _, r := range readTopic(t, addr, schemas.TopicCart, 0, 500*time.Millisecond) {
				var e struct {
					EventID string `json:"event_id"`
					Type    string `json:"type"`
				}
				if json.Unmarshal(r.Value, &e) == nil && schemas.IsCartEvent(e.Type) {
					cart[e.EventID] = true
				}
			}
			if len(cart) < 100 {
				t.Fatalf("only %d cart events produced; the stream is too short to test a restart", len(cart))
			}
			seen := map[string]int{}
			checkfor.Until(t, 60*time.Second, "a prediction for every cart event", func() bool {
				clear(seen)
				for _, r := range readTopic(t, addr, schemas.TopicPredictions, 0, 300*time.Millisecond) {
					var p schemas.Prediction
					if json.Unmarshal(r.Value, &p) == nil {
						seen[p.EventID]++
					}
				}
				for id := range cart {
					if seen[id] == 0 {
						return false
					}
				}
				return true
			})
			dups := 0
			for _, n := range seen {
				dups += n - 1
			}
			t.Logf("%d cart events, %d committed predictions duplicated after the restart", len(cart), dups)
			if dups > 0 {
				t.Errorf("%d cart events were scored twice after a %s: a read_committed reader must see exactly one prediction", dups, tc.name)
			}
		})
	}
}
