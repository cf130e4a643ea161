package chsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/chtest"
	"github.com/driftline/driftline/schemas"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// fixture is a kfake broker with every topic, and a producer.
type fixture struct {
	kafka consumers.KafkaConfig
	cl    *kgo.Client
	t0    time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	b, err := consumers.NewBroker(consumers.BrokerConfig{}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 4}
	kcfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := consumers.ProvisionTopics(ctx, kcfg, quiet); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kcfg.Opts(quiet, kgo.ProducerLinger(2*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &fixture{kafka: kcfg, cl: cl, t0: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)}
}

// event returns a valid storefront record of one of three types, i-th of
// a stream.
func (f *fixture) event(i int) *kgo.Record {
	e := schemas.NewEvent()
	e.EventID = "e" + strconv.Itoa(i)
	e.UserID = "u" + strconv.Itoa(i%50)
	e.SessionID = "s" + strconv.Itoa(i%200)
	e.TS = f.t0.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
	e.Device = []string{"mobile", "desktop"}[i%2]
	switch i % 3 {
	case 0:
		e.Type = schemas.ProductView
		e.ProductID, e.Price = "p1", 10+float64(i%7)
	case 1:
		e.Type = schemas.AddToCart
		e.ProductID, e.Price, e.Quantity = "p2", 20, 1+i%3
	default:
		e.Type = schemas.Purchase
		e.OrderID, e.Amount, e.Currency = "o"+strconv.Itoa(i), 42.5, "EUR"
	}
	return &kgo.Record{Topic: f.kafka.Topics.ForType(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil)}
}

func (f *fixture) json(t testing.TB, topic, key string, v any) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

// derived returns one record of every derived topic, one undecodable
// prediction, one dead letter and one invalid storefront event.
func (f *fixture) derived(t testing.TB) []*kgo.Record {
	tp := f.kafka.Topics
	seg := schemas.Segments{Device: "mobile", Country: "DE", Referrer: "social"}
	at := f.t0.Add(time.Minute)
	pValue := 0.001
	win := schemas.WindowResult{Definitions: "d", Model: "m", Feature: "s_cart_sum_session", Aggregation: "sum", Kind: schemas.WindowSession,
		Entity: "session", Key: "s1", Window: schemas.Window{From: f.t0, To: at}, Value: 61.5, Events: 3, Watermark: at.Add(time.Second), InputPartition: 2}
	bad := &kgo.Record{Topic: tp.Cart, Key: []byte("u1"), Value: []byte(`{"event_id":"bad","type":"add_to_cart","price":-3}`)}
	return []*kgo.Record{
		f.json(t, tp.Features, "u1", schemas.FeatureVector{Model: "m", EventID: "e1", EventType: schemas.AddToCart, EventTime: at, UserID: "u1", SessionID: "s1", Segments: seg, Values: []float64{1, 2.5}}),
		f.json(t, tp.Predictions, "u1", schemas.Prediction{Model: "m", Version: 2, Score: 0.7, EventID: "e1", EventType: schemas.AddToCart, EventTime: at, UserID: "u1", SessionID: "s1", Segments: seg, ScoredAt: time.Now()}),
		f.json(t, tp.Labels, "u1", schemas.Label{Model: "m", Version: 2, Score: 0.7, EventID: "e1", EventTime: at, UserID: "u1", SessionID: "s1", Segments: seg, Values: []float64{1, 2.5}, Label: 1, Reason: schemas.LabelReasonPurchase, LabelTime: at.Add(5 * time.Minute)}),
		f.json(t, tp.Windows, string(schemas.AppendWindowKey(nil, &win)), win),
		f.json(t, tp.Alerts, "m", schemas.Alert{ID: "a1", Kind: schemas.AlertDrift, Severity: "warning", Model: "m", Version: 2, Feature: "x", Statistic: "psi", Value: 0.3, Threshold: 0.2, Window: schemas.Window{From: f.t0, To: at}, Samples: 2000, EventTime: at, FiredAt: time.Now(), Evidence: map[string]float64{"p_value": 0.01, "ks": 0.2}}),
		f.json(t, tp.Reports, "m", schemas.Report{ID: "m/v2/drift/x/ks/r1", Kind: schemas.AlertDrift, Model: "m", Version: 2, Feature: "x", Statistic: "ks", Method: "ks", Value: 0.21, PValue: &pValue, Threshold: 0.025, Comparison: "<", Breached: true, Window: schemas.Window{From: f.t0, To: at}, Samples: 2000, ReferenceRows: 800, EventTime: at, ReportedAt: time.Now()}),
		f.json(t, tp.Reports, "m", schemas.Report{ID: "m/v2/accuracy/device=mobile/log_loss/r1", Kind: schemas.AlertAccuracy, Model: "m", Version: 2, Segment: "device=mobile", Statistic: "log_loss", Method: "roc_auc", Value: 0.52, Window: schemas.Window{From: f.t0, To: at}, Samples: 1000, EventTime: at, ReportedAt: time.Now()}),
		f.json(t, tp.Retrain, "m", schemas.RetrainRequest{IdempotencyKey: "m/v2/x", Model: "m", FromVersion: 2, Reason: "drift", Alerts: []string{"a1"}, DataFrom: at, RequestedAt: time.Now()}),
		f.json(t, tp.Models, schemas.VersionKey("m", 3), schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &schemas.ModelVersion{Model: "m", Version: 3, Parent: 2, CreatedAt: time.Now(), Backend: "cpu-go-logreg", Features: []string{"x", "y"}, Weights: []float64{0.1, 0.2}, Mean: []float64{0, 0}, Std: []float64{1, 1}, Training: schemas.Window{From: f.t0, To: at}, Rows: 2000, Metrics: schemas.ModelMetrics{AUC: 0.8, GatePassed: true}}}),
		f.json(t, tp.Models, schemas.AliasKey("m", schemas.AliasChampion), schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasChampion, Version: 3, Previous: 2, Reason: "gate", At: time.Now()}}),
		{Topic: tp.Predictions, Key: []byte("u9"), Value: []byte(`{"model":"m","score":`)},
		consumers.DeadLetter(tp.DLQ, &kgo.Record{Topic: tp.Cart, Partition: 3, Offset: 17, Key: []byte("u1"), Value: []byte(`{"price":-3}`)}, "price", "price: must be >= 0, got -3"),
		bad,
	}
}

func (f *fixture) produce(t testing.TB, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// runSink starts a sink and returns it with a function that stops it and
// returns Run's error.
func runSink(t *testing.T, cfg Config, kafka consumers.KafkaConfig, reg prometheus.Registerer) (*Sink, func() error) {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s, err := New(cfg, kafka, quiet, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("sink did not stop within 60 s")
		}
	}
	t.Cleanup(func() { _ = stop() })
	return s, stop
}

// counts returns the rows of every table, nil while the tables do not
// exist yet.
func counts(t testing.TB, conn driver.Conn, db string, final bool) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, tb := range allTables {
		q := "SELECT count() FROM " + db + "." + tb
		if final {
			q += " FINAL"
		}
		var n uint64
		if err := conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			return nil // not created yet
		}
		out[tb] = n
	}
	return out
}

func TestRowsLandInEveryTableAndRedeliveryCollapses(t *testing.T) {
	dsn := chtest.DSN(t)
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	f := newFixture(t)

	const n = 3000
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		recs = append(recs, f.event(i))
	}
	f.produce(t, recs...)
	f.produce(t, f.derived(t)...)

	reg := prometheus.NewRegistry()
	cfg := Config{DSN: dsn, Database: db, BatchRows: 1000, BatchInterval: 200 * time.Millisecond}
	s, stop := runSink(t, cfg, f.kafka, reg)
	want := map[string]uint64{
		TableEvents: n, TableFeatures: 1, TablePredictions: 1, TableLabels: 1, TableWindows: 1, TableAlerts: 1, TableReports: 2,
		TableRetrainRequests: 1, TableModelVersions: 1, TableModelAliases: 1,
		// the dead letter produced by the test, and the one the sink
		// wrote for the undecodable prediction
		TableDeadLetters: 2,
	}
	checkfor.Until(t, 60*time.Second, "every row in ClickHouse", func() bool {
		got := counts(t, conn, db, false)
		for tb, w := range want {
			if got[tb] < w {
				return false
			}
		}
		return true
	})
	if got := testutil.ToFloat64(s.m.skipped.WithLabelValues("invalid")); got != 1 {
		t.Errorf("invalid storefront records skipped = %v, want 1 (the feature stage dead-letters them)", got)
	}
	if got := testutil.ToFloat64(s.m.deadLetters); got != 1 {
		t.Errorf("dead letters from the sink = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.rows.WithLabelValues(TableEvents)); got != n {
		t.Errorf("driftline_sink_rows_total{table=events} = %v, want %d", got, n)
	}
	checkfor.Until(t, 30*time.Second, "the sink's offsets committed (lag 0)", func() bool {
		lag, err := s.Lag(context.Background(), admin(t, f))
		return err == nil && lag == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("sink run: %v", err)
	}

	// Values survive the trip.
	var (
		typ        string
		price      float64
		qty        uint32
		device     string
		tsMs       uint64
		evKeys     []string
		evValues   []float64
		reason     string
		sourceOff  uint64
		values     []float64
		features   []string
		gatePassed uint8
	)
	row := func(q string, dest ...any) {
		t.Helper()
		if err := conn.QueryRow(context.Background(), q).Scan(dest...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	row("SELECT type, price, quantity, device, ts_ms FROM "+db+".events WHERE event_id = 'e4'", &typ, &price, &qty, &device, &tsMs)
	if typ != schemas.AddToCart || price != 20 || qty != 2 || device != "mobile" || tsMs != uint64(f.t0.Add(4*time.Second).UnixMilli()) {
		t.Errorf("event e4 = %s %v %d %s %d", typ, price, qty, device, tsMs)
	}
	row("SELECT evidence_keys, evidence_values FROM "+db+".alerts WHERE id = 'a1'", &evKeys, &evValues)
	if fmt.Sprint(evKeys, evValues) != "[ks p_value] [0.2 0.01]" {
		t.Errorf("alert evidence = %v %v", evKeys, evValues)
	}
	var (
		pv, th, value float64
		breached      uint8
		cmp           string
	)
	row("SELECT p_value, threshold, comparison, breached FROM "+db+".reports WHERE statistic = 'ks'", &pv, &th, &cmp, &breached)
	if pv != 0.001 || th != 0.025 || cmp != "<" || breached != 1 {
		t.Errorf("ks report: p %v threshold %v %q breached %d", pv, th, cmp, breached)
	}
	row("SELECT p_value, value, breached FROM "+db+".reports WHERE segment = 'device=mobile'", &pv, &value, &breached)
	if !math.IsNaN(pv) || value != 0.52 || breached != 0 {
		t.Errorf("log loss report: p %v (want nan: none), value %v, breached %d", pv, value, breached)
	}
	var (
		winKey, winKind    string
		winEvents, winPart uint32
		winFromMs, winWmMs uint64
		winValue           float64
	)
	row("SELECT `key`, kind, events, input_partition, window_from_ms, watermark_ms, value FROM "+db+".windows WHERE feature = 's_cart_sum_session'",
		&winKey, &winKind, &winEvents, &winPart, &winFromMs, &winWmMs, &winValue)
	if winKey != "s1" || winKind != schemas.WindowSession || winEvents != 3 || winPart != 2 || winFromMs != uint64(f.t0.UnixMilli()) ||
		winWmMs != uint64(f.t0.Add(time.Minute+time.Second).UnixMilli()) || winValue != 61.5 {
		t.Errorf("window row = %q %q %d %d %d %d %v", winKey, winKind, winEvents, winPart, winFromMs, winWmMs, winValue)
	}
	row("SELECT reason, source_offset FROM "+db+".dead_letters WHERE source_topic = '"+f.kafka.Topics.Cart+"'", &reason, &sourceOff)
	if reason != "price: must be >= 0, got -3" || sourceOff != 17 {
		t.Errorf("dead letter = %q @%d", reason, sourceOff)
	}
	row("SELECT `values` FROM "+db+".labels WHERE event_id = 'e1'", &values)
	row("SELECT features, gate_passed FROM "+db+".model_versions WHERE version = 3", &features, &gatePassed)
	if fmt.Sprint(values, features, gatePassed) != "[1 2.5] [x y] 1" {
		t.Errorf("label values %v, version features %v gate %d", values, features, gatePassed)
	}

	// Redelivery: a sink of another group reads every record again. The
	// tables hold each row twice until merged; FINAL shows each once. Wait
	// on what ClickHouse acknowledged to the replay sink, not on raw row
	// counts: a background merge may collapse the copies at any moment.
	cfg.Group = "driftline-sink-replay"
	replay, stop2 := runSink(t, cfg, f.kafka, nil)
	checkfor.Until(t, 60*time.Second, "every row written a second time", func() bool {
		return uint64(testutil.ToFloat64(replay.m.rows.WithLabelValues(TableEvents))) >= n
	})
	if err := stop2(); err != nil {
		t.Fatalf("replay sink run: %v", err)
	}
	final := counts(t, conn, db, true)
	// The replay dead-letters the undecodable prediction again; keyed by
	// its source topic/partition/offset, the copy collapses too.
	for tb, w := range want {
		if final[tb] != w {
			t.Errorf("%s: %d rows with FINAL after redelivery, want %d", tb, final[tb], w)
		}
	}
}

func admin(t testing.TB, f *fixture) *kadm.Client {
	t.Helper()
	return kadm.NewClient(f.cl)
}
