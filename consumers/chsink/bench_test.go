package chsink

import (
	"context"
	stdjson "encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/chtest"
	"github.com/driftline/driftline/schemas"
)

// backlog produces n records: 70% storefront events, 10% each feature
// vectors, predictions and labels (the demo's mix is ~80/10/5/10).
func (f *fixture) backlog(b testing.TB, n int) {
	tp := f.kafka.Topics
	seg := schemas.Segments{Device: "mobile", Country: "DE", Referrer: "social"}
	vals := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	batch := make([]*kgo.Record, 0, 10_000)
	for i := range n {
		at := f.t0.Add(time.Duration(i) * time.Millisecond)
		id := "e" + strconv.Itoa(i)
		var r *kgo.Record
		switch i % 10 {
		case 7:
			r = f.json(b, tp.Features, "u1", schemas.FeatureVector{Model: "m", EventID: id, EventType: schemas.AddToCart, EventTime: at, UserID: "u" + strconv.Itoa(i%5000), SessionID: "s1", Segments: seg, Values: vals})
		case 8:
			r = f.json(b, tp.Predictions, "u1", schemas.Prediction{Model: "m", Version: 2, Score: 0.7, EventID: id, EventType: schemas.AddToCart, EventTime: at, UserID: "u1", SessionID: "s1", Segments: seg, ScoredAt: at})
		case 9:
			r = f.json(b, tp.Labels, "u1", schemas.Label{Model: "m", Version: 2, Score: 0.7, EventID: id, EventTime: at, UserID: "u1", SessionID: "s1", Segments: seg, Values: vals, Label: i % 2, Reason: schemas.LabelReasonPurchase, LabelTime: at})
		default:
			r = f.event(i)
		}
		r.Partition = int32(i % int(f.kafka.Partitions))
		batch = append(batch, r)
		if len(batch) == cap(batch) {
			f.produce(b, batch...)
			batch = batch[:0]
		}
	}
	f.produce(b, batch...)
}

// BenchmarkSinkBacklog drains a backlog (200k records; set
// DRIFTLINE_SINK_BENCH_ROWS, e.g. 2000000) from the embedded broker into
// ClickHouse, first with a plain clickhouse-go baseline (one consumer
// without a group, encoding/json into the record structs, row-wise
// batch.Append of 100k-row batches, no offsets), then with the sink (group
// consumer, decode, columnar batches, commits after each acknowledged
// batch), in the same run against the same server:
//
//	go test ./consumers/chsink -run '^$' -bench SinkBacklog -benchtime 1x
func BenchmarkSinkBacklog(b *testing.B) {
	dsn := chtest.DSN(b)
	n := 200_000
	if s := os.Getenv("DRIFTLINE_SINK_BENCH_ROWS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	conn := chtest.Conn(b, dsn)
	f := newFixture(b)
	start := time.Now()
	f.backlog(b, n)
	b.Logf("backlog of %d records produced in %.1fs", n, time.Since(start).Seconds())
	b.ResetTimer()
	var base, sink, peer time.Duration
	sinker := os.Getenv("DRIFTLINE_SINK_BENCH_SINKER")
	for range b.N {
		base = baseline(b, f, conn, chtest.Database(b, conn), n)
		sink = measureSink(b, f, dsn, chtest.Database(b, conn), n)
		if sinker != "" {
			peer = measureSinker(b, sinker, f, dsn, conn, chtest.Database(b, conn), n)
		}
	}
	b.StopTimer()
	if peer > 0 {
		peerRate := float64(n) / peer.Seconds()
		b.ReportMetric(peerRate, "clickhouse_sinker_rows/s")
		b.ReportMetric(float64(n)/sink.Seconds()/peerRate, "sink/clickhouse_sinker")
		b.Logf("clickhouse_sinker %.2fs (%.0f rows/s)", peer.Seconds(), peerRate)
	}
	baseRate, sinkRate := float64(n)/base.Seconds(), float64(n)/sink.Seconds()
	b.ReportMetric(baseRate, "baseline_rows/s")
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(sinkRate/baseRate, "sink/baseline")
	b.Logf("%d rows: clickhouse-go baseline %.2fs (%.0f rows/s), sink %.2fs (%.0f rows/s): %.2fx",
		n, base.Seconds(), baseRate, sink.Seconds(), sinkRate, sinkRate/baseRate)
}

func measureSink(b *testing.B, f *fixture, dsn, db string, n int) time.Duration {
	reg := prometheus.NewRegistry()
	s, err := New(Config{DSN: dsn, Database: db, BatchRows: 100_000, BatchInterval: time.Second}, f.kafka, quiet, reg)
	if err != nil {
		b.Fatal(err)
	}
	// Tables exist before the clock starts, as for the baseline.
	if _, err := ApplyDDL(context.Background(), chtest.Conn(b, dsn), db); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	written := func() float64 {
		var sum float64
		for _, t := range allTables {
			sum += testutil.ToFloat64(s.m.rows.WithLabelValues(t))
		}
		return sum
	}
	tick := time.NewTicker(5 * time.Millisecond) // the measurement's resolution
	defer tick.Stop()
	for written() < float64(n) {
		<-tick.C
		if time.Since(start) > 10*time.Minute {
			b.Fatalf("sink wrote %v of %d rows in 10 min", written(), n)
		}
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return elapsed
}

// baseline is the plain clickhouse-go path: read every record, decode with
// encoding/json, Append row by row, Send every 100k rows per table.
func baseline(b *testing.B, f *fixture, conn driver.Conn, db string, n int) time.Duration {
	if _, err := ApplyDDL(context.Background(), conn, db); err != nil {
		b.Fatal(err)
	}
	tp := f.kafka.Topics
	start := time.Now()
	cl, err := kgo.NewClient(f.kafka.Opts(quiet,
		kgo.ConsumeTopics(tp.Clickstream, tp.Cart, tp.Transactions, tp.Features, tp.Predictions, tp.Labels),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := context.Background()
	type pending struct {
		batch driver.Batch
		rows  int
	}
	cols := map[string]string{}
	for name, cs := range schemas.ClickHouseTables() {
		var names []string
		for _, c := range cs {
			names = append(names, "`"+c.Name+"`")
		}
		cols[name] = fmt.Sprintf("INSERT INTO %s.%s (%s)", db, name, joinComma(names))
	}
	batches := map[string]*pending{}
	appendRow := func(table string, vals ...any) {
		p := batches[table]
		if p == nil {
			bt, err := conn.PrepareBatch(ctx, cols[table])
			if err != nil {
				b.Fatal(err)
			}
			p = &pending{batch: bt}
			batches[table] = p
		}
		if err := p.batch.Append(vals...); err != nil {
			b.Fatal(err)
		}
		p.rows++
		if p.rows == 100_000 {
			if err := p.batch.Send(); err != nil {
				b.Fatal(err)
			}
			delete(batches, table)
		}
	}
	ms := func(t time.Time) uint64 { return uint64(t.UnixMilli()) }
	read := 0
	for read < n {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			read++
			switch r.Topic {
			case tp.Features:
				var v schemas.FeatureVector
				if err := stdjson.Unmarshal(r.Value, &v); err != nil {
					b.Fatal(err)
				}
				appendRow(TableFeatures, v.Model, v.EventID, v.EventType, v.EventTime, ms(v.EventTime), v.UserID, v.SessionID,
					v.Device, v.Country, v.Referrer, v.Values, uint32(r.Partition), uint64(r.Offset))
			case tp.Predictions:
				var v schemas.Prediction
				if err := stdjson.Unmarshal(r.Value, &v); err != nil {
					b.Fatal(err)
				}
				appendRow(TablePredictions, v.Model, uint32(v.Version), v.Score, v.EventID, v.EventType, v.EventTime, ms(v.EventTime),
					v.UserID, v.SessionID, v.Device, v.Country, v.Referrer, v.ScoredAt, ms(v.ScoredAt), boolByte(v.Shadow),
					uint32(r.Partition), uint64(r.Offset))
			case tp.Labels:
				var v schemas.Label
				if err := stdjson.Unmarshal(r.Value, &v); err != nil {
					b.Fatal(err)
				}
				appendRow(TableLabels, v.Model, uint32(v.Version), v.Score, v.EventID, v.EventTime, ms(v.EventTime), v.UserID, v.SessionID,
					v.Device, v.Country, v.Referrer, v.Values, uint8(v.Label), v.Reason, v.LabelTime, ms(v.LabelTime),
					uint32(r.Partition), uint64(r.Offset))
			default:
				var e schemas.Event
				if err := stdjson.Unmarshal(r.Value, &e); err != nil {
					b.Fatal(err)
				}
				ts, err := time.Parse(time.RFC3339Nano, e.TS)
				if err != nil {
					b.Fatal(err)
				}
				appendRow(TableEvents, e.EventID, e.Type, ts, ms(ts), e.UserID, e.SessionID, uint16(e.SchemaVersion),
					e.Device, e.Country, e.Referrer, e.Page, e.Query, e.Category, e.ProductID, e.Price, uint32(max(e.Quantity, 0)),
					e.CartValue, uint32(max(e.Items, 0)), e.OrderID, e.Amount, e.Currency, r.Topic, uint32(r.Partition), uint64(r.Offset))
			}
		})
	}
	for _, p := range batches {
		if err := p.batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}

// measureSinker runs clickhouse_sinker (DRIFTLINE_SINK_BENCH_SINKER, a
// binary built from github.com/housepower/clickhouse_sinker/cmd/clickhouse_sinker)
// over the same backlog into the same tables: one task per topic, JSON
// parser, schema read from the table, 100k-row buffers, 1 s flushes. It
// fills the columns named like JSON fields; the sink's extras (epoch-ms,
// Kafka coordinates) stay at their defaults.
func measureSinker(b *testing.B, bin string, f *fixture, dsn string, conn driver.Conn, db string, n int) time.Duration {
	if _, err := ApplyDDL(context.Background(), conn, db); err != nil {
		b.Fatal(err)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	tp := f.kafka.Topics
	var tasks []map[string]any
	for topic, table := range map[string]string{
		tp.Clickstream: TableEvents, tp.Cart: TableEvents, tp.Transactions: TableEvents,
		tp.Features: TableFeatures, tp.Predictions: TablePredictions, tp.Labels: TableLabels,
	} {
		tasks = append(tasks, map[string]any{
			"name": "t_" + strings.ReplaceAll(topic, ".", "_"), "topic": topic, "consumerGroup": "sinker-" + db,
			"earliest": true, "parser": "fastjson", "tableName": table, "autoSchema": true,
			"bufferSize": 100_000, "flushInterval": 1, "timeZone": "UTC",
			// A sharding key keeps it from its ReplacingMergeTree set-up
			// (ALTER TABLE ... ADD COLUMN IF NOT EXISTS, which 18.16
			// cannot parse); with one server it shards nothing.
			"shardingKey": "event_id",
		})
	}
	cfg := map[string]any{
		"clickhouse": map[string]any{"hosts": [][]string{{u.Hostname()}}, "port": port, "db": db, "username": "default", "maxOpenConns": 1},
		"kafka":      map[string]any{"brokers": strings.Join(f.kafka.Brokers, ",")},
		"tasks":      tasks,
	}
	dir := b.TempDir()
	cfgFile := filepath.Join(dir, "sinker.json")
	raw, _ := stdjson.Marshal(cfg)
	if err := os.WriteFile(cfgFile, raw, 0o600); err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "sinker.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--local-cfg-file", cfgFile, "--http-port", "0")
	cmd.Stdout, cmd.Stderr = logf, logf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	count := func() uint64 {
		var total uint64
		for _, t := range []string{TableEvents, TableFeatures, TablePredictions, TableLabels} {
			var c uint64
			if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+"."+t).Scan(&c); err != nil {
				return 0
			}
			total += c
		}
		return total
	}
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for count() < uint64(n) {
		<-tick.C
		if time.Since(start) > 10*time.Minute {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("clickhouse_sinker wrote %d of %d rows in 10 min; its log:\n%s", count(), n, tail(string(log), 3000))
		}
	}
	return time.Since(start)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}
