package features

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// stage is a Processor driven record by record, without a broker.
type stage struct {
	t      testing.TB
	p      *Processor
	offset int64
}

func newStage(t testing.TB, withModel bool) *stage {
	t.Helper()
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := New(Config{}, kcfg, consumers.NewModelFeed(kcfg, log), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if withModel {
		n := len(p.cfg.Spec.Features)
		v := &schemas.ModelVersion{
			Model: p.cfg.Spec.Name, Version: 3, Features: p.cfg.Spec.Features,
			Weights: make([]float64, n), Mean: make([]float64, n), Std: slices.Repeat([]float64{1}, n), Bias: 0.5,
		}
		if err := p.scorer.Swap(v); err != nil {
			t.Fatal(err)
		}
	}
	return &stage{t: t, p: p}
}

// send feeds one event, given as JSON fields, on the topic its type belongs on.
func (s *stage) send(typ string, at time.Duration, session, extra string) {
	s.t.Helper()
	id := fmt.Sprintf("e%d", s.offset)
	v := fmt.Sprintf(`{"event_id":%q,"type":%q,"ts":%q,"user_id":"u1","session_id":%q,"device":"mobile"%s}`,
		id, typ, t0.Add(at).Format(time.RFC3339Nano), session, extra)
	s.raw(schemas.TopicOf(typ), v)
}

func (s *stage) raw(topic, value string) {
	s.p.handle(&kgo.Record{Topic: topic, Partition: 0, Offset: s.offset, Key: []byte("u1"), Value: []byte(value), Timestamp: time.Now()})
	s.offset++
}

// out drains the produced records of one topic.
func (s *stage) out(topic string) []*kgo.Record {
	var got, rest []*kgo.Record
	for _, r := range s.p.out {
		if r.Topic == topic {
			got = append(got, r)
		} else {
			rest = append(rest, r)
		}
	}
	s.p.out = rest
	return got
}

func decodeAll[T any](t *testing.T, recs []*kgo.Record) []T {
	t.Helper()
	out := make([]T, len(recs))
	for i, r := range recs {
		if err := json.Unmarshal(r.Value, &out[i]); err != nil {
			t.Fatalf("cannot decode %s record: %v", r.Topic, err)
		}
	}
	return out
}

const cartItem = `,"product_id":"p1","price":20,"quantity":2`

func TestVectorOnEveryCartEvent(t *testing.T) {
	s := newStage(t, true)
	s.send(schemas.PageView, 0, "s1", "")
	s.send(schemas.ProductView, time.Minute, "s1", `,"product_id":"p1","price":10`)
	s.send(schemas.ProductView, 2*time.Minute, "s1", `,"product_id":"p2","price":30`)
	s.send(schemas.AddToCart, 3*time.Minute, "s1", cartItem)
	s.send(schemas.CheckoutStart, 4*time.Minute, "s1", `,"cart_value":40,"items":2`)

	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if len(vecs) != 2 {
		t.Fatalf("got %d vectors, want one per cart event (2)", len(vecs))
	}
	names := s.p.cfg.Spec.Features
	get := func(v schemas.FeatureVector, name string) float64 { return v.Values[slices.Index(names, name)] }
	for _, c := range []struct {
		vec  int
		name string
		want float64
	}{
		{0, "session_events", 4}, {0, "session_product_views", 2}, {0, "session_cart_value", 40},
		{0, "session_mean_viewed_price", 20}, {0, "session_minutes", 3}, {0, "is_checkout", 0},
		{0, "device_mobile", 1}, {0, "user_sessions", 1}, {0, "hours_since_last_purchase", neverPurchasedHours},
		{1, "is_checkout", 1}, {1, "session_events", 5}, {1, "session_minutes", 4},
	} {
		if got := get(vecs[c.vec], c.name); got != c.want {
			t.Errorf("vector %d: %s = %g, want %g", c.vec, c.name, got, c.want)
		}
	}
	preds := decodeAll[schemas.Prediction](t, s.out(schemas.TopicPredictions))
	if len(preds) != 2 || preds[0].Version != 3 || preds[0].EventID != vecs[0].EventID {
		t.Fatalf("want one prediction per vector by v3, got %+v", preds)
	}
}

func TestLabels(t *testing.T) {
	s := newStage(t, true)
	// Session a buys 10 minutes after its cart event: positive.
	s.send(schemas.AddToCart, 0, "a", cartItem)
	s.send(schemas.Purchase, 10*time.Minute, "a", `,"order_id":"o1","amount":40,"currency":"EUR"`)
	// Session b never buys: negative once the watermark passes 30 min + lateness.
	s.send(schemas.AddToCart, 11*time.Minute, "b", cartItem)
	// Session c's purchase is read before its cart event (the topics are
	// consumed concurrently): still positive.
	s.send(schemas.Purchase, 25*time.Minute, "c", `,"order_id":"o2","amount":40,"currency":"EUR"`)
	s.send(schemas.AddToCart, 20*time.Minute, "c", cartItem)
	if got := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels)); len(got) != 2 {
		t.Fatalf("before the horizon passes want the 2 purchase labels, got %d: %+v", len(got), got)
	}
	// Advance the watermark of every input topic past b's horizon.
	s.send(schemas.PageView, 43*time.Minute, "z", "")
	s.send(schemas.AddToCart, 43*time.Minute, "z", cartItem)
	s.send(schemas.Purchase, 43*time.Minute, "y", `,"order_id":"o3","amount":1,"currency":"EUR"`)
	labels := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels))
	if len(labels) != 1 {
		t.Fatalf("want b's negative label, got %+v", labels)
	}
	if l := labels[0]; l.SessionID != "b" || l.Label != 0 || l.Reason != schemas.LabelReasonHorizon || l.Version != 3 || len(l.Values) == 0 {
		t.Errorf("negative label = %+v", l)
	}
}

func TestNoLabelLeakIntoUserFeatures(t *testing.T) {
	s := newStage(t, false)
	// The purchase of session a (10:05) is read before its cart event
	// (10:01): the vector must not count it as a past purchase.
	s.send(schemas.Purchase, 5*time.Minute, "a", `,"order_id":"o1","amount":40,"currency":"EUR"`)
	s.send(schemas.AddToCart, time.Minute, "a", cartItem)
	// A later session sees it.
	s.send(schemas.AddToCart, 2*time.Hour, "b", cartItem)
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	i := slices.Index(s.p.cfg.Spec.Features, "user_purchases")
	h := slices.Index(s.p.cfg.Spec.Features, "hours_since_last_purchase")
	if vecs[0].Values[i] != 0 || vecs[0].Values[h] != neverPurchasedHours {
		t.Errorf("cart event before the purchase sees user_purchases=%g hours=%g, want 0 and %d", vecs[0].Values[i], vecs[0].Values[h], neverPurchasedHours)
	}
	if vecs[1].Values[i] != 1 || vecs[1].Values[h] != 1.0+55.0/60 {
		t.Errorf("later session sees user_purchases=%g hours=%g, want 1 and %g", vecs[1].Values[i], vecs[1].Values[h], 1.0+55.0/60)
	}
}

func TestColdStartEmitsVectorsAndLabelsButNoPredictions(t *testing.T) {
	s := newStage(t, false)
	s.send(schemas.AddToCart, 0, "a", cartItem)
	s.send(schemas.Purchase, time.Minute, "a", `,"order_id":"o1","amount":40,"currency":"EUR"`)
	if n := len(s.out(schemas.TopicFeatures)); n != 1 {
		t.Errorf("%d vectors, want 1", n)
	}
	if n := len(s.out(schemas.TopicPredictions)); n != 0 {
		t.Errorf("%d predictions without a champion, want 0", n)
	}
	if got := testutil.ToFloat64(s.p.m.unscored); got != 1 {
		t.Errorf("driftline_features_unscored_total = %g, want 1: the metric must say why nothing was scored", got)
	}
	labels := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels))
	if len(labels) != 1 || labels[0].Version != 0 || labels[0].Label != 1 {
		t.Errorf("cold-start label = %+v, want one positive with version 0", labels)
	}
}

func TestBadInputGoesToDLQWithReason(t *testing.T) {
	s := newStage(t, true)
	for _, c := range []struct{ topic, value, field, reason string }{
		{schemas.TopicCart, `{"event_id":"x"`, "record", "invalid JSON"},
		{schemas.TopicCart, `{"event_id":"x","type":"add_to_cart","ts":"2026-11-23T10:00:00Z","user_id":"u1","session_id":"s","product_id":"p","price":-3,"quantity":1}`, "price", "price: must be >= 0, got -3"},
		{schemas.TopicCart, `{"event_id":"x","type":"purchase","ts":"2026-11-23T10:00:00Z","user_id":"u1","session_id":"s","order_id":"o","amount":1,"currency":"EUR"}`, "type", "belongs on storefront.transactions"},
	} {
		s.raw(c.topic, c.value)
		dlq := s.out(schemas.TopicDLQ)
		if len(dlq) != 1 {
			t.Fatalf("%s: %d DLQ records, want 1", c.value, len(dlq))
		}
		r := dlq[0]
		if string(r.Value) != c.value {
			t.Errorf("DLQ value %q, want the original bytes %q", r.Value, c.value)
		}
		if f := consumers.Header(r, schemas.HeaderField); f != c.field {
			t.Errorf("%s: field %q, want %q", c.value, f, c.field)
		}
		if reason := consumers.Header(r, schemas.HeaderReason); !contains(reason, c.reason) {
			t.Errorf("%s: reason %q, want it to contain %q", c.value, reason, c.reason)
		}
		if consumers.Header(r, schemas.HeaderSourceTopic) != c.topic || consumers.Header(r, schemas.HeaderSourceOffset) == "" {
			t.Errorf("DLQ record lacks its source: %v", r.Headers)
		}
	}
	if n := len(s.out(schemas.TopicFeatures)); n != 0 {
		t.Errorf("bad input produced %d vectors", n)
	}
}

// neverPurchasedHours is hours_since_last_purchase for a user with none
// (default and max_value in purchase_propensity.yaml).
const neverPurchasedHours = 720

func TestScorerRefusesMismatchedModel(t *testing.T) {
	sc := NewScorer(PurchasePropensity())
	v := &schemas.ModelVersion{Model: "purchase_propensity", Version: 1, Features: []string{"session_events"}, Weights: []float64{1}, Mean: []float64{0}, Std: []float64{1}}
	if err := sc.Swap(v); err == nil {
		t.Fatal("a version with other features must be refused")
	}
	if _, _, ok := sc.Score(make([]float64, len(PurchasePropensity().Features))); ok {
		t.Fatal("nothing must be served after a refused swap")
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestSecondPurchaseOfASessionStillLabelsPositive(t *testing.T) {
	s := newStage(t, true)
	// Both purchases are read before the cart event they follow.
	s.send(schemas.Purchase, 10*time.Minute, "a", `,"order_id":"o1","amount":1,"currency":"EUR"`)
	s.send(schemas.Purchase, 100*time.Minute, "a", `,"order_id":"o2","amount":1,"currency":"EUR"`)
	s.send(schemas.AddToCart, 80*time.Minute, "a", cartItem)
	labels := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels))
	if len(labels) != 1 || labels[0].Label != 1 || !labels[0].LabelTime.Equal(t0.Add(100*time.Minute)) {
		t.Fatalf("want the cart at 11:20 labelled positive by the purchase at 11:40, got %+v", labels)
	}
}

func TestFarFutureEventDoesNotHoldBackOtherLabels(t *testing.T) {
	s := newStage(t, true)
	s.send(schemas.AddToCart, 365*24*time.Hour, "future", cartItem) // a producer clock a year ahead
	s.send(schemas.AddToCart, 0, "b", cartItem)
	for _, typ := range []string{schemas.PageView, schemas.AddToCart} {
		s.send(typ, 2*time.Hour, "z", map[string]string{schemas.PageView: "", schemas.AddToCart: cartItem}[typ])
	}
	s.send(schemas.Purchase, 2*time.Hour, "y", `,"order_id":"o","amount":1,"currency":"EUR"`)
	var b []schemas.Label
	for _, l := range decodeAll[schemas.Label](t, s.out(schemas.TopicLabels)) {
		if l.SessionID == "b" {
			b = append(b, l)
		}
	}
	if len(b) != 1 || b[0].Label != 0 {
		t.Fatalf("session b must be labelled negative once the watermark passed its horizon, got %+v", b)
	}
}

func TestWatermarkWaitsForEveryInputUntilIdle(t *testing.T) {
	s := newStage(t, true)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.p.now = func() time.Time { return clock }
	// Carts and clicks move two hours ahead; the transactions topic of this
	// partition has not been read yet (a backlog, a slow fetch). The
	// purchase may still be there: no negative label yet.
	s.send(schemas.AddToCart, 0, "a", cartItem)
	s.send(schemas.PageView, 2*time.Hour, "z", "")
	s.send(schemas.AddToCart, 2*time.Hour, "z", cartItem)
	if n := len(s.out(schemas.TopicLabels)); n != 0 {
		t.Fatalf("%d labels while the transactions topic was never read, want 0", n)
	}
	// After the idle timeout of wall time without a transaction, the topic
	// stops holding the watermark back.
	clock = clock.Add(s.p.cfg.IdleTimeout + time.Second)
	s.send(schemas.PageView, 2*time.Hour+time.Second, "z", "")
	labels := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels))
	if len(labels) != 1 || labels[0].SessionID != "a" || labels[0].Label != 0 {
		t.Fatalf("after the idle timeout want a's negative label, got %+v", labels)
	}
}

func TestOutputsAreKeyedByUserID(t *testing.T) {
	s := newStage(t, true)
	v := `{"event_id":"e1","type":"add_to_cart","ts":"2026-11-23T10:00:00Z","user_id":"u7","session_id":"s","product_id":"p","price":1,"quantity":1}`
	s.p.handle(&kgo.Record{Topic: schemas.TopicCart, Key: nil, Value: []byte(v)}) // kcat without -K
	for _, topic := range []string{schemas.TopicFeatures, schemas.TopicPredictions} {
		out := s.out(topic)
		if len(out) != 1 || string(out[0].Key) != "u7" {
			t.Errorf("%s: want one record keyed u7, got %d", topic, len(out))
		}
	}
	if got := testutil.ToFloat64(s.p.m.misrouted); got != 1 {
		t.Errorf("misrouted = %g, want 1", got)
	}
}

func TestLateEventGoesToDLQ(t *testing.T) {
	s := newStage(t, true)
	for _, typ := range []string{schemas.PageView, schemas.AddToCart} {
		s.send(typ, time.Hour, "a", map[string]string{schemas.PageView: "", schemas.AddToCart: cartItem}[typ])
	}
	s.send(schemas.Purchase, time.Hour, "b", `,"order_id":"o","amount":1,"currency":"EUR"`)
	s.out(schemas.TopicFeatures)
	// Within the allowed lateness (1m): applied.
	s.send(schemas.AddToCart, time.Hour-30*time.Second, "c", cartItem)
	if n := len(s.out(schemas.TopicFeatures)); n != 1 {
		t.Fatalf("an event within the allowed lateness gave %d vectors, want 1", n)
	}
	// Ten minutes behind every input: late.
	s.send(schemas.AddToCart, 50*time.Minute, "d", cartItem)
	if n := len(s.out(schemas.TopicFeatures)); n != 0 {
		t.Errorf("a late event gave %d vectors, want 0", n)
	}
	dlq := s.out(schemas.TopicDLQ)
	if len(dlq) != 1 || consumers.Header(dlq[0], schemas.HeaderField) != "ts" || !strings.HasPrefix(consumers.Header(dlq[0], schemas.HeaderReason), "late: ") {
		t.Fatalf("late event not dead-lettered with reason late: %v", dlq)
	}
	if got := testutil.ToFloat64(s.p.m.late); got != 1 {
		t.Errorf("late counter = %g, want 1", got)
	}
}

// TestLaggingTransactionsTopicKeepsPositiveLabels: the stage drives the
// window engine with its own watermark (the minimum over the input topics),
// not the engine's (the maximum minus the lateness), so a purchase read
// long after carts and clicks moved ahead is applied, not rejected as late,
// and labels its cart event positive.
func TestLaggingTransactionsTopicKeepsPositiveLabels(t *testing.T) {
	s := newStage(t, true)
	s.send(schemas.AddToCart, 0, "a", cartItem)
	s.send(schemas.PageView, 2*time.Hour, "z", "")
	s.send(schemas.AddToCart, 2*time.Hour, "z", cartItem)
	s.send(schemas.Purchase, 10*time.Minute, "a", `,"order_id":"o1","amount":40,"currency":"EUR"`)
	if dlq := s.out(schemas.TopicDLQ); len(dlq) != 0 {
		t.Fatalf("the lagging topic's purchase was dead-lettered: %s", consumers.Header(dlq[0], schemas.HeaderReason))
	}
	labels := decodeAll[schemas.Label](t, s.out(schemas.TopicLabels))
	if len(labels) != 1 || labels[0].SessionID != "a" || labels[0].Label != 1 {
		t.Fatalf("want a's positive label, got %+v", labels)
	}
	// The user's features saw it: the next session's vector counts it.
	s.send(schemas.AddToCart, 2*time.Hour+time.Minute, "b", cartItem)
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if got := vecs[len(vecs)-1].Values[slices.Index(s.p.cfg.Spec.Features, "user_purchases")]; got != 1 {
		t.Errorf("user_purchases after the purchase = %g, want 1", got)
	}
}

// TestKeyBudgetRejectsToDLQ: an event that needs a new key beyond max_keys
// is dead-lettered with reason state_full and counted, never dropped
// silently; known keys go on.
func TestKeyBudgetRejectsToDLQ(t *testing.T) {
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg := prometheus.NewRegistry()
	p, err := New(Config{MaxKeys: 3}, kcfg, consumers.NewModelFeed(kcfg, log), log, reg)
	if err != nil {
		t.Fatal(err)
	}
	s := &stage{t: t, p: p}
	s.send(schemas.AddToCart, 0, "s1", cartItem)             // u1 + s1: 2 keys
	s.send(schemas.AddToCart, time.Second, "s2", cartItem)   // s2: the 3rd key
	s.send(schemas.AddToCart, 2*time.Second, "s3", cartItem) // s3: a 4th key, beyond the budget
	s.send(schemas.AddToCart, 3*time.Second, "s1", cartItem) // known keys
	if n := len(s.out(schemas.TopicFeatures)); n != 3 {
		t.Errorf("%d vectors, want 3 (s1 twice, s2)", n)
	}
	dlq := s.out(schemas.TopicDLQ)
	if len(dlq) != 1 || consumers.Header(dlq[0], schemas.HeaderField) != "state" || !strings.HasPrefix(consumers.Header(dlq[0], schemas.HeaderReason), "state_full: ") {
		t.Fatalf("want s3's event dead-lettered with reason state_full, got %d records", len(dlq))
	}
	if !strings.Contains(string(dlq[0].Value), `"session_id":"s3"`) {
		t.Errorf("DLQ value %s, want s3's original record", dlq[0].Value)
	}
	if got := testutil.ToFloat64(p.m.stateFull); got != 1 {
		t.Errorf("driftline_features_state_full_total = %g, want 1", got)
	}
	if got := testutil.ToFloat64(p.m.dlq.WithLabelValues("state")); got != 1 {
		t.Errorf("driftline_features_dlq_total{field=state} = %g, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "driftline_window_full_rejections_total"); err != nil || n != 1 {
		t.Errorf("window engine metrics not registered: %d series, %v", n, err)
	}
}

// TestFeaturesFile: an operator's YAML replaces the embedded definitions;
// a model feature it does not define is refused at start with its name.
func TestFeaturesFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/f.yaml"
	yaml := `name: mine
features:
  - name: cart_adds_5m
    entity: session
    events: [add_to_cart]
    aggregation: count
    window: {kind: tumbling, size: 5m}
  - name: max_price
    entity: user
    events: [add_to_cart, product_view]
    value: price
    aggregation: max
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	feed := consumers.NewModelFeed(kcfg, log)
	if _, err := New(Config{FeaturesFile: path}, kcfg, feed, log, prometheus.NewRegistry()); err == nil || !strings.Contains(err.Error(), `feature "session_events" is not defined in `+path) {
		t.Fatalf("default model over a file without its features: err %v", err)
	}
	spec := Spec{Name: "mine", Triggers: []string{schemas.AddToCart}, Horizon: time.Hour, Features: []string{"max_price", "cart_adds_5m"}}
	p, err := New(Config{FeaturesFile: path, Spec: spec}, kcfg, feed, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &stage{t: t, p: p}
	s.send(schemas.ProductView, 0, "s1", `,"product_id":"p1","price":90`)
	s.send(schemas.AddToCart, time.Minute, "s1", cartItem)
	s.send(schemas.AddToCart, 6*time.Minute, "s1", cartItem)
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if len(vecs) != 2 || !slices.Equal(vecs[0].Values, []float64{90, 1}) || !slices.Equal(vecs[1].Values, []float64{90, 1}) {
		t.Fatalf("vectors %+v, want [90 1] twice (a new 5-minute window at minute 6)", vecs)
	}
	if _, err := New(Config{FeaturesFile: dir + "/missing.yaml", Spec: spec}, kcfg, feed, log, prometheus.NewRegistry()); err == nil {
		t.Fatal("a missing features file must be refused")
	}
}

// A session_id names one session of one user: another user's event under
// the same session_id is dead-lettered with the reason, never merged into
// the first user's session features and labels.
func TestSessionIDOfAnotherUserIsRejected(t *testing.T) {
	s := newStage(t, true)
	s.send(schemas.AddToCart, 0, "s1", `,"product_id":"p1","price":10,"quantity":1`)
	s.raw(schemas.TopicCart, fmt.Sprintf(`{"event_id":"x1","type":"add_to_cart","ts":%q,"user_id":"u2","session_id":"s1","product_id":"p2","price":297,"quantity":1}`,
		t0.Add(time.Minute).Format(time.RFC3339Nano)))
	s.send(schemas.AddToCart, 2*time.Minute, "s1", `,"product_id":"p3","price":5,"quantity":1`)
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if len(vecs) != 2 || vecs[0].UserID != "u1" || vecs[1].UserID != "u1" {
		t.Fatalf("vectors = %+v, want two of u1", vecs)
	}
	names := s.p.cfg.Spec.Features
	if got := vecs[1].Values[slices.Index(names, "session_cart_value")]; got != 15 {
		t.Errorf("u1's session_cart_value = %g, want 15: u2's 297 must not be merged in", got)
	}
	dlq := s.out(schemas.TopicDLQ)
	if len(dlq) != 1 || consumers.Header(dlq[0], schemas.HeaderField) != "session_id" ||
		!strings.Contains(consumers.Header(dlq[0], schemas.HeaderReason), `already belongs to user "u1"`) {
		t.Fatalf("dead letters = %d, want u2's event with field session_id and the owner named", len(dlq))
	}
}

// Segment triples are shared up to a bound: a producer sending a new
// referrer with every session does not grow the table without end.
func TestInternedSegmentsAreBounded(t *testing.T) {
	s := newStage(t, true)
	for i := range maxInterned + 500 {
		s.raw(schemas.TopicClickstream, fmt.Sprintf(`{"event_id":"r%d","type":"page_view","ts":%q,"user_id":"u1","session_id":"s%d","referrer":"ref-%d"}`,
			i, t0.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), i, i))
	}
	if n := len(s.p.parts[0].segments); n != maxInterned {
		t.Fatalf("%d interned segment triples, want the bound %d", n, maxInterned)
	}
}

// A record refused before the engine takes it (a session_id that belongs to
// another user) moves no watermark: the next valid event, behind it but
// ahead of every accepted one, is not late. It once moved the engine's
// watermark alone, and valid events behind it went to the DLQ as late.
func TestRefusedRecordMovesNoWatermark(t *testing.T) {
	s := newStage(t, true)
	clock := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s.p.now = func() time.Time { clock = clock.Add(time.Hour); return clock } // every input idle: the newest event time counts
	s.send(schemas.PageView, 0, "s1", "")
	s.raw(schemas.TopicClickstream, fmt.Sprintf(`{"event_id":"intruder","type":"page_view","ts":%q,"user_id":"u2","session_id":"s1","device":"mobile"}`,
		t0.Add(time.Hour).Format(time.RFC3339Nano)))
	if dlq := s.out(schemas.TopicDLQ); len(dlq) != 1 || consumers.Header(dlq[0], schemas.HeaderField) != "session_id" {
		t.Fatalf("the other user's session_id was not refused: %v", dlq)
	}
	s.send(schemas.AddToCart, 2*time.Minute, "s1", cartItem)
	if dlq := s.out(schemas.TopicDLQ); len(dlq) != 0 {
		t.Fatalf("a valid event 2 minutes after the last accepted one was dead-lettered: %s: %s",
			consumers.Header(dlq[0], schemas.HeaderField), consumers.Header(dlq[0], schemas.HeaderReason))
	}
	if n := len(s.out(schemas.TopicFeatures)); n != 1 {
		t.Errorf("%d vectors for the cart event, want 1", n)
	}
}

// TestSessionsHaveTheKeyBudget: with definitions that keep no session state
// the engine holds one key per user, yet the stage keeps label bookkeeping
// per session: max_keys bounds those sessions too. An event that would
// open a session beyond it goes to the DLQ as state_full and moves nothing.
func TestSessionsHaveTheKeyBudget(t *testing.T) {
	path := t.TempDir() + "/f.yaml"
	yaml := `name: users_only
features:
  - name: user_cart_adds
    entity: user
    events: [add_to_cart]
    aggregation: count
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	kcfg := consumers.KafkaConfig{Brokers: []string{"unused:9092"}}
	kcfg.SetDefaults()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	spec := Spec{Name: "users_only", Triggers: []string{schemas.AddToCart}, Horizon: time.Hour, Features: []string{"user_cart_adds"}}
	p, err := New(Config{FeaturesFile: path, Spec: spec, MaxKeys: 3}, kcfg, consumers.NewModelFeed(kcfg, log), log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	s := &stage{t: t, p: p}
	for i := range 4 {
		s.send(schemas.AddToCart, time.Duration(i)*time.Second, fmt.Sprintf("s%d", i), cartItem)
	}
	s.send(schemas.AddToCart, 5*time.Second, "s0", cartItem) // a session already held
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if len(vecs) != 4 || vecs[3].SessionID != "s0" || vecs[3].Values[0] != 4 {
		t.Errorf("vectors %+v: want s0, s1, s2 and s0 again (the user's 4th accepted cart add), s3 refused", vecs)
	}
	dlq := s.out(schemas.TopicDLQ)
	if got := s.p.parts[0].sessions.len(); got != 3 {
		t.Errorf("%d sessions held, want the budget's 3", got)
	}
	if len(dlq) != 1 || !strings.HasPrefix(consumers.Header(dlq[0], schemas.HeaderReason), "state_full") {
		t.Fatalf("dead letters %v, want one state_full for the fourth session", dlq)
	}
}
