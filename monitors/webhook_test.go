package monitors

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

// slackBody is what a Slack incoming webhook reads.
type slackBody struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
	} `json:"blocks"`
}

// receiver is an httptest webhook that answers the given statuses in turn
// (then 200) and keeps every body.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   []slackBody
	statuses []int
	calls    atomic.Int32
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		n := int(r.calls.Add(1))
		if req.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON", http.StatusUnsupportedMediaType)
			return
		}
		if n <= len(r.statuses) {
			w.WriteHeader(r.statuses[n-1])
			return
		}
		var b slackBody
		if err := json.NewDecoder(req.Body).Decode(&b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []slackBody {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]slackBody(nil), r.bodies...)
}

func testAlert(id string) schemas.Alert {
	return schemas.Alert{
		ID: id, Kind: schemas.AlertDrift, Status: schemas.AlertFiring, DedupKey: "m/v3/drift/price/wasserstein",
		Severity: schemas.SeverityCritical, Model: "m", Version: 3, Feature: "price", Segment: "device=mobile",
		Statistic: "wasserstein", Value: 0.61, Threshold: 0.2, Comparison: ">", Samples: 2000,
		Window: schemas.Window{From: t0, To: t0.Add(time.Hour)}, EventTime: t0.Add(time.Hour),
	}
}

func newTestWebhook(t *testing.T, url string, kcfg consumers.KafkaConfig) *Webhook {
	w, err := NewWebhook(WebhookConfig{URL: url, Backoff: time.Millisecond, Attempts: 4, Resolved: true}, kcfg, quietLog, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWebhookRetriesThenPostsSlackJSON(t *testing.T) {
	r := newReceiver(t, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	w := newTestWebhook(t, r.srv.URL, consumers.KafkaConfig{})
	if err := w.Post(context.Background(), testAlert("a1")); err != nil {
		t.Fatal(err)
	}
	got := r.received()
	if len(got) != 1 || r.calls.Load() != 3 || testutil.ToFloat64(w.retries) != 2 {
		t.Fatalf("%d calls, %d bodies, %g retries; want 3 calls (503, 429, 200), one body, 2 retries", r.calls.Load(), len(got), testutil.ToFloat64(w.retries))
	}
	b := got[0]
	for _, want := range []string{"CRITICAL", "drift", "m/v3", "wasserstein(price) [device=mobile]", "0.61", "> 0.2"} {
		if !strings.Contains(b.Text, want) {
			t.Errorf("text %q lacks %q", b.Text, want)
		}
	}
	if len(b.Blocks) != 3 || b.Blocks[0].Type != "section" || b.Blocks[2].Type != "context" {
		t.Errorf("blocks = %+v", b.Blocks)
	}
}

func TestWebhookGivesUpOnRejectionAndAfterAttempts(t *testing.T) {
	r := newReceiver(t, http.StatusBadRequest)
	w := newTestWebhook(t, r.srv.URL, consumers.KafkaConfig{})
	if err := w.Post(context.Background(), testAlert("a1")); !errors.Is(err, ErrWebhookRejected) || r.calls.Load() != 1 {
		t.Errorf("400: err %v after %d calls, want ErrWebhookRejected after 1", err, r.calls.Load())
	}
	r = newReceiver(t, 500, 500, 500, 500, 500)
	w = newTestWebhook(t, r.srv.URL, consumers.KafkaConfig{})
	if err := w.Post(context.Background(), testAlert("a2")); err == nil || r.calls.Load() != 4 {
		t.Errorf("5 x 500: err %v after %d calls, want an error after 4 attempts", err, r.calls.Load())
	}
}

func TestWebhookConfigValidate(t *testing.T) {
	for _, c := range []WebhookConfig{{}, {URL: "ftp://x"}, {URL: "http://x", Attempts: -1}} {
		c.setDefaults()
		if c.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
}

// Run forwards what the monitor publishes on driftline.alerts, through a
// real (embedded kfake) broker.
func TestWebhookForwardsAlertsFromTheTopic(t *testing.T) {
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 1}
	kcfg.SetDefaults()
	r := newReceiver(t, http.StatusBadGateway)
	w := newTestWebhook(t, r.srv.URL, kcfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	// The forwarder starts at the end of the topic: produce until it has
	// joined and forwarded one.
	n := 0
	checkfor.Until(t, 20*time.Second, "an alert forwarded to the webhook", func() bool {
		n++
		v, _ := json.Marshal(testAlert("a" + string(rune('0'+n%10))))
		_ = prod.ProduceSync(ctx, &kgo.Record{Topic: kcfg.Topics.Alerts, Key: []byte("m"), Value: v}).FirstErr()
		return len(r.received()) > 0
	})
	if got := r.received()[0]; !strings.Contains(got.Text, "drift on m/v3") {
		t.Errorf("forwarded text %q", got.Text)
	}
	if testutil.ToFloat64(w.posted) < 1 || testutil.ToFloat64(w.retries) < 1 {
		t.Errorf("posted %g, retries %g: want the 502 retried and the alert posted", testutil.ToFloat64(w.posted), testutil.ToFloat64(w.retries))
	}
}

// A webhook URL's path is its secret; a connection error must not quote it.
func TestWebhookErrorsDoNotQuoteTheSecretPath(t *testing.T) {
	const secret = "T000/B000/XXXXSECRETXXXX"
	w := newTestWebhook(t, "http://127.0.0.1:1/services/"+secret, consumers.KafkaConfig{})
	err := w.Post(context.Background(), testAlert("a1"))
	if err == nil {
		t.Fatal("posting to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "SECRET") || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("error = %v: want the host, never the path", err)
	}
}
