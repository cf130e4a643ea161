package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// binary is the driftline binary built once for the end-to-end tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "driftline-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "driftline")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "cannot build driftline: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool finds an external program; under CI=true a missing one fails
// the test instead of skipping it, since the test command installs it.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true (make test installs it): %v", name, err)
		}
		t.Skipf("%s not installed (make test installs it)", name)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a driftline subprocess whose output goes to the test log on failure.
type proc struct {
	cmd *exec.Cmd
	out *bytes.Buffer
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start driftline %v: %v", args, err)
	}
	p := &proc{cmd: cmd, out: &out}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("driftline %s output:\n%s", args[0], out.String())
		}
	})
	return p
}

// stop sends SIGTERM and requires a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("driftline did not exit cleanly on SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("driftline did not exit within 30s of SIGTERM\n%s", p.out.String())
	}
}

// startBroker runs `driftline broker` and waits until it accepts connections.
func startBroker(t *testing.T) string {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	start(t, "broker", "--listen", addr, "--data-dir", t.TempDir())
	checkfor.Until(t, 20*time.Second, "broker to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	// The broker provisions topics right after it listens.
	checkfor.Until(t, 20*time.Second, "topics to be provisioned", func() bool {
		return topicExists(addr, schemas.TopicCart) && topicExists(addr, schemas.TopicModels)
	})
	return addr
}

func topicExists(addr, topic string) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return false
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	return err == nil && td.Has(topic) && td[topic].Err == nil
}

// readTopic reads every record of a topic currently there (up to want, or
// until idle for quiet).
func readTopic(t *testing.T, addr, topic string, want int, quiet time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())) // the stage writes in transactions
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for {
		wait := quiet // the first poll also connects: give it time on a loaded machine
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

// kcatProduce produces a key<TAB>value file to a topic with kcat.
func kcatProduce(t *testing.T, kcat, addr, topic, file string) {
	t.Helper()
	out, err := exec.Command(kcat, "-b", addr, "-P", "-t", topic, "-K", "\t", "-l", file).CombinedOutput()
	if err != nil {
		t.Fatalf("kcat could not produce %s to %s: %v\n%s", file, topic, err, out)
	}
}

// expectedFromFiles reads the kcat files the way a producer sees them: the
// event ids of valid cart events, and the number of invalid lines.
func expectedFromFiles(t *testing.T, files map[string]string) (cartIDs map[string]bool, invalid []string) {
	t.Helper()
	cartIDs = map[string]bool{}
	var dec schemas.Decoder
	for topic, file := range files {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			_, value, ok := strings.Cut(sc.Text(), "\t")
			if !ok {
				t.Fatalf("%s: line without a key: %q", file, sc.Text())
			}
			var e schemas.Event
			if err := dec.Decode(topic, []byte(value), &e); err != nil {
				invalid = append(invalid, value)
				continue
			}
			if schemas.IsCartEvent(e.Type) {
				cartIDs[strings.Clone(e.EventID)] = true
			}
		}
		f.Close()
	}
	return cartIDs, invalid
}

// TestKcatToRun: a client we did not write (Debian's kcat) produces a file
// of storefront events, valid and invalid mixed, to `driftline broker`;
// `driftline run` processes them; every valid cart event gets exactly one
// prediction and every invalid line lands in the DLQ with its reason.
func TestKcatToRun(t *testing.T) {
	kcat := requireTool(t, "kcat")
	addr := startBroker(t)
	root := filepath.Join("..", "..", "testdata")
	kcatProduce(t, kcat, addr, schemas.TopicModels, filepath.Join(root, "models", "kcat_registry.txt"))
	files := map[string]string{
		schemas.TopicClickstream:  filepath.Join(root, "contract", "kcat_clickstream.txt"),
		schemas.TopicCart:         filepath.Join(root, "contract", "kcat_cart.txt"),
		schemas.TopicTransactions: filepath.Join(root, "contract", "kcat_transactions.txt"),
	}
	for topic, file := range files {
		kcatProduce(t, kcat, addr, topic, file)
	}
	cartIDs, invalid := expectedFromFiles(t, files)
	if len(cartIDs) == 0 || len(invalid) == 0 {
		t.Fatalf("fixture must hold valid cart events and invalid lines, got %d and %d", len(cartIDs), len(invalid))
	}

	run := start(t, "run", "--brokers", addr, "--roles", "features,monitor,trainer", "--metrics-addr", "")
	var preds, dlq []*kgo.Record
	checkfor.Until(t, 60*time.Second, "one prediction per cart event and every invalid line dead-lettered", func() bool {
		preds = readTopic(t, addr, schemas.TopicPredictions, len(cartIDs), 300*time.Millisecond)
		dlq = readTopic(t, addr, schemas.TopicDLQ, len(invalid), 300*time.Millisecond)
		return len(preds) >= len(cartIDs) && len(dlq) >= len(invalid)
	})
	run.stop(t)

	seen := map[string]int{}
	for _, r := range preds {
		var p schemas.Prediction
		if err := json.Unmarshal(r.Value, &p); err != nil {
			t.Fatalf("prediction is not JSON: %v: %s", err, r.Value)
		}
		if p.Model != "purchase_propensity" || p.Version != 1 || p.Score <= 0 || p.Score >= 1 {
			t.Errorf("unexpected prediction %+v", p)
		}
		seen[p.EventID]++
	}
	for id := range cartIDs {
		if seen[id] != 1 {
			t.Errorf("cart event %s has %d predictions, want 1", id, seen[id])
		}
	}
	if len(seen) != len(cartIDs) {
		t.Errorf("%d events were scored, want the %d valid cart events", len(seen), len(cartIDs))
	}

	gotBad := map[string]string{}
	for _, r := range dlq {
		reason := consumers.Header(r, schemas.HeaderReason)
		if reason == "" || consumers.Header(r, schemas.HeaderSourceTopic) == "" || consumers.Header(r, schemas.HeaderSourceOffset) == "" {
			t.Errorf("dead letter without reason or source: %q headers %v", r.Value, r.Headers)
		}
		gotBad[string(r.Value)] = reason
	}
	for _, v := range invalid {
		if _, ok := gotBad[v]; !ok {
			t.Errorf("invalid line missing from the DLQ (original bytes must be kept): %s", v)
		}
	}
	if len(dlq) != len(invalid) {
		t.Errorf("DLQ holds %d records, want %d", len(dlq), len(invalid))
	}
}
