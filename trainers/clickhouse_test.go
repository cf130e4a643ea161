package trainers

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers/chsink"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/chtest"
	"github.com/driftline/driftline/schemas"
)

// chLabels are the labels of the ClickHouse tests: model "m" every 7s of
// event time from t0, three users (so three partitions' worth of
// interleaving), pairs of rows sharing an event time (the event id breaks
// the tie), and labels of another model in between.
func chLabels(t0 time.Time, n int) []schemas.Label {
	var out []schemas.Label
	for i := range n {
		at := t0.Add(time.Duration(i/2) * 7 * time.Second) // rows 2k and 2k+1 share a time
		l := schemas.Label{
			Model: "m", Version: i % 3, Score: float64(i%10) / 10, EventID: fmt.Sprintf("e%03d", n-i),
			EventTime: at, UserID: fmt.Sprintf("u%d", i%3), SessionID: fmt.Sprintf("s%d", i/4),
			Segments: schemas.Segments{Device: []string{"mobile", "desktop"}[i%2], Country: "DE"},
			Values:   []float64{float64(i), float64(i%5) * 0.25, -1.5},
			Label:    i % 2, Reason: schemas.LabelReasonHorizon, LabelTime: at.Add(30 * time.Minute),
		}
		if l.Label == 1 {
			l.Reason = schemas.LabelReasonPurchase
			l.LabelTime = at.Add(time.Duration(i) * time.Second)
		}
		out = append(out, l)
		if i%5 == 0 {
			o := l
			o.Model, o.EventID = "other", "o"+l.EventID
			out = append(out, o)
		}
	}
	return out
}

// TestClickHouseSourceMatchesReplay writes labels to the labels topic, lets
// the real sink copy them into ClickHouse, duplicates some rows there as a
// redelivered batch would, and asks both sources for the same windows:
// same rows, same order, same content, same fingerprint.
func TestClickHouseSourceMatchesReplay(t *testing.T) {
	dsn := chtest.DSN(t)
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	e := newKafkaEnv(t)

	labels := chLabels(t0, 120)
	var recs []*kgo.Record
	for _, l := range labels {
		b, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		// The feature stage stamps a label record with the served vector's
		// event time; the replay seeks by it.
		recs = append(recs, &kgo.Record{Topic: e.kcfg.Topics.Labels, Key: []byte(l.UserID), Value: b, Timestamp: l.EventTime})
	}
	e.produce(t, recs...)

	runSink(t, e, dsn, db)
	var mRows uint64
	for _, l := range labels {
		if l.Model == "m" {
			mRows++
		}
	}
	checkfor.Until(t, 60*time.Second, "the sink wrote every label", func() bool {
		var n uint64
		err := conn.QueryRow(e.ctx, "SELECT count() FROM "+db+".labels FINAL WHERE model = 'm'").Scan(&n)
		return err == nil && n == mRows
	})
	// A redelivered batch: the same labels written again, as new rows.
	if err := conn.Exec(e.ctx, "INSERT INTO "+db+".labels SELECT * FROM "+db+".labels WHERE model = 'm' AND event_id IN ('e120', 'e119', 'e050', 'e001')"); err != nil {
		t.Fatal(err)
	}
	if n := chtest.Count(t, conn, "SELECT count() FROM "+db+".labels WHERE model = 'm'"); n < mRows {
		t.Fatalf("labels table holds %d rows of m, want at least %d", n, mRows)
	}

	ch, err := NewClickHouseSource(ClickHouseConfig{DSN: dsn, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	replay := LabelReplay{Kafka: e.kcfg, Log: e.log}

	last := labels[len(labels)-1].EventTime
	for _, c := range []struct {
		name     string
		from, to time.Time
	}{
		{"everything", t0.Add(-time.Hour), last.Add(time.Hour)},
		// Bounds on row times: both ends are inside (the window is closed).
		{"bounds on rows", t0.Add(70 * time.Second), t0.Add(210 * time.Second)},
		// A sub-millisecond bound excludes the row at its millisecond.
		{"sub-millisecond bounds", t0.Add(70*time.Second + 1), t0.Add(210*time.Second - 1)},
		{"empty", last.Add(time.Minute), last.Add(2 * time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var want []schemas.Label
			for _, l := range labels {
				if l.Model == "m" && !l.EventTime.Before(c.from) && !l.EventTime.After(c.to) {
					want = append(want, l)
				}
			}
			want = TrainingOrder(want)
			got, err := ch.TrainingRows(e.ctx, "m", c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := replay.TrainingRows(e.ctx, "m", c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			rep = TrainingOrder(rep)
			if len(got) != len(want) || len(rep) != len(want) {
				t.Fatalf("ClickHouse gave %d rows, the replay %d, want %d", len(got), len(rep), len(want))
			}
			for i := range want {
				for name, src := range map[string]schemas.Label{"ClickHouse": got[i], "replay": rep[i]} {
					if !sameLabel(src, want[i]) {
						t.Errorf("%s row %d = %+v, want %+v", name, i, src, want[i])
					}
				}
			}
			fc, fr := Fingerprint(got, SourceClickHouse), Fingerprint(rep, SourceLabelsTopic)
			if fc.Rows != fr.Rows || fc.SHA256 != fr.SHA256 || !fc.From.Equal(fr.From) || !fc.To.Equal(fr.To) {
				t.Errorf("fingerprints differ: ClickHouse %+v, replay %+v", fc, fr)
			}
			if len(want) > 0 && (fc.From.Before(c.from) || fc.To.After(c.to)) {
				t.Errorf("fingerprint range %s..%s outside the window %s..%s", fc.From, fc.To, c.from, c.to)
			}
		})
	}
	if got, err := ch.TrainingRows(e.ctx, "nobody", t0, last); err != nil || len(got) != 0 {
		t.Errorf("rows of an unknown model: %d, err %v", len(got), err)
	}
}

// runSink runs the ClickHouse sink on e's broker into database db until
// the test ends.
func runSink(t *testing.T, e *kafkaEnv, dsn, db string) {
	t.Helper()
	sink, err := chsink.New(chsink.Config{DSN: dsn, Database: db, BatchInterval: 100 * time.Millisecond}, e.kcfg, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- sink.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		<-done
	})
}

// produceLabels writes n labelled vectors of the trainer's model to the
// labels topic, a minute of event time apart from t0.
func produceLabels(t *testing.T, e *kafkaEnv, n int) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	var recs []*kgo.Record
	for i, l := range labelled(rng, n, 1, t0) {
		l.Model, l.UserID, l.EventID = "purchase_propensity", "u"+strconv.Itoa(i%50), "e"+strconv.Itoa(i)
		b, _ := json.Marshal(l)
		recs = append(recs, &kgo.Record{Topic: e.kcfg.Topics.Labels, Key: []byte(l.UserID), Value: b, Timestamp: l.EventTime})
	}
	e.produce(t, recs...)
}

// runWorker runs a trainer worker with cfg until the test ends and
// returns it once the bootstrap champion exists.
func runWorker(t *testing.T, e *kafkaEnv, cfg Config) (*Worker, *schemas.ModelVersion) {
	t.Helper()
	sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{Brokers: e.kcfg.Brokers, ConsumerGroup: "trainers"}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	w, err := New(cfg, e.kcfg, e.feed, e.pub, sub, e.log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker did not stop cleanly: %v", err)
		}
	})
	checkfor.Until(t, 60*time.Second, "the bootstrap champion", func() bool { return e.feed.Champion("purchase_propensity") != nil })
	return w, e.feed.Champion("purchase_propensity")
}

// TestWorkerTrainsFromClickHouse: with ClickHouse configured and the sink
// running, the bootstrap version is trained on ClickHouse's rows, records
// that source, and its fingerprint is what both sources give for its
// recorded range.
func TestWorkerTrainsFromClickHouse(t *testing.T) {
	dsn := chtest.DSN(t)
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	e := newKafkaEnv(t)
	produceLabels(t, e, 3000)
	runSink(t, e, dsn, db)
	w, v1 := runWorker(t, e, Config{Features: names, MinRows: 2000, ClickHouse: ClickHouseConfig{DSN: dsn, Database: db}})
	if v1.Dataset == nil || v1.Dataset.Source != SourceClickHouse {
		t.Fatalf("v1 dataset %+v, want source %q", v1.Dataset, SourceClickHouse)
	}
	if n := testutil.ToFloat64(w.m.dataFallbacks); n != 0 {
		t.Errorf("%v fallbacks to the replay", n)
	}
	rows, err := w.ch.TrainingRows(e.ctx, "purchase_propensity", v1.Dataset.From, v1.Dataset.To)
	if err != nil {
		t.Fatal(err)
	}
	if got := Fingerprint(rows, SourceClickHouse); got != *v1.Dataset {
		t.Errorf("ClickHouse rows of the recorded range: %+v, recorded %+v", got, *v1.Dataset)
	}
	replayed, err := LabelReplay{Kafka: e.kcfg}.TrainingRows(e.ctx, "purchase_propensity", v1.Dataset.From, v1.Dataset.To)
	if err != nil {
		t.Fatal(err)
	}
	if got := Fingerprint(TrainingOrder(replayed), SourceClickHouse); got != *v1.Dataset {
		t.Errorf("replayed rows of the recorded range: %+v, recorded %+v", got, *v1.Dataset)
	}
}

// TestWorkerFallsBackToReplayWhenClickHouseIsDown: ClickHouse configured
// but not answering costs one Wait, then the version is trained on the
// replay and says so.
func TestWorkerFallsBackToReplayWhenClickHouseIsDown(t *testing.T) {
	e := newKafkaEnv(t)
	produceLabels(t, e, 3000)
	w, v1 := runWorker(t, e, Config{Features: names, MinRows: 2000,
		ClickHouse: ClickHouseConfig{DSN: "clickhouse://127.0.0.1:1?dial_timeout=200ms", Wait: 500 * time.Millisecond, QueryTimeout: time.Second}})
	if v1.Dataset == nil || v1.Dataset.Source != SourceLabelsTopic {
		t.Fatalf("v1 dataset %+v, want source %q", v1.Dataset, SourceLabelsTopic)
	}
	if n := testutil.ToFloat64(w.m.dataFallbacks); n != 1 {
		t.Errorf("%v fallbacks to the replay, want 1", n)
	}
	replayed, err := LabelReplay{Kafka: e.kcfg}.TrainingRows(e.ctx, "purchase_propensity", v1.Dataset.From, v1.Dataset.To)
	if err != nil {
		t.Fatal(err)
	}
	if got := Fingerprint(TrainingOrder(replayed), SourceLabelsTopic); got != *v1.Dataset {
		t.Errorf("replayed rows of the recorded range: %+v, recorded %+v", got, *v1.Dataset)
	}
}

// TestWorkerFallsBackToReplayWhenClickHouseLags: ClickHouse answers but
// lacks the rows the labels topic has (its sink reads another broker here,
// so it never catches up): after Wait the replay's rows are used.
func TestWorkerFallsBackToReplayWhenClickHouseLags(t *testing.T) {
	dsn := chtest.DSN(t)
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	runSink(t, newKafkaEnv(t), dsn, db) // creates the tables, writes nothing
	checkfor.Until(t, 30*time.Second, "the labels table", func() bool {
		return conn.Exec(context.Background(), "SELECT count() FROM "+db+".labels") == nil
	})
	e := newKafkaEnv(t)
	produceLabels(t, e, 3000)
	w, v1 := runWorker(t, e, Config{Features: names, MinRows: 2000,
		ClickHouse: ClickHouseConfig{DSN: dsn, Database: db, Wait: 1500 * time.Millisecond}})
	if v1.Dataset == nil || v1.Dataset.Source != SourceLabelsTopic || v1.Rows == 0 {
		t.Fatalf("v1 rows %d dataset %+v, want source %q", v1.Rows, v1.Dataset, SourceLabelsTopic)
	}
	if n := testutil.ToFloat64(w.m.dataFallbacks); n != 1 {
		t.Errorf("%v fallbacks to the replay, want 1", n)
	}
}

func sameLabel(a, b schemas.Label) bool {
	return a.Model == b.Model && a.Version == b.Version && a.Score == b.Score && a.EventID == b.EventID &&
		a.EventTime.Equal(b.EventTime) && a.UserID == b.UserID && a.SessionID == b.SessionID &&
		a.Segments == b.Segments && slices.Equal(a.Values, b.Values) && a.Label == b.Label &&
		a.Reason == b.Reason && a.LabelTime.Equal(b.LabelTime)
}

// TestClickHouseSourceDown: a server that does not answer is an error that
// says so, never an empty training set.
func TestClickHouseSourceDown(t *testing.T) {
	ch, err := NewClickHouseSource(ClickHouseConfig{DSN: "clickhouse://127.0.0.1:1?dial_timeout=200ms", QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	rows, err := ch.TrainingRows(context.Background(), "m", time.Unix(0, 0), time.Now())
	if err == nil {
		t.Fatalf("no error from a server that is down; %d rows", len(rows))
	}
}
