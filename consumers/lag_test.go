package consumers

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/checkfor"
)

func TestLagPerGroupTopicPartition(t *testing.T) {
	b, cfg := startBroker(t, "")
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(cfg.Opts(quiet, kgo.DefaultProduceTopic("lagged"), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, -1, nil, "lagged"); err != nil {
		t.Fatal(err)
	}
	// 7 records on partition 0, 3 on partition 1.
	for i := range 10 {
		p := int32(0)
		if i >= 7 {
			p = 1
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The group has committed 5 on p0 and 3 on p1.
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "lagged", Partition: 0, At: 5, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "lagged", Partition: 1, At: 3, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g1", offs); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	// "not-joined-yet" has never committed: no series, and not an error.
	lm, err := NewLagMonitor(LagConfig{Groups: []string{"g1", "not-joined-yet"}}, cfg, quiet, reg)
	if err != nil {
		t.Fatal(err)
	}
	lm.Poll(ctx, adm)
	for p, want := range map[string]float64{"0": 2, "1": 0} {
		if got := testutil.ToFloat64(lm.m.lag.WithLabelValues("g1", "lagged", p)); got != want {
			t.Errorf("lag of g1 lagged/%s = %v, want %v", p, got, want)
		}
	}
	// Catching up moves the gauge.
	offs.Add(kadm.Offset{Topic: "lagged", Partition: 0, At: 7, LeaderEpoch: -1})
	if _, err := adm.CommitOffsets(ctx, "g1", offs); err != nil {
		t.Fatal(err)
	}
	lm.Poll(ctx, adm)
	if got := testutil.ToFloat64(lm.m.lag.WithLabelValues("g1", "lagged", "0")); got != 0 {
		t.Errorf("lag after catching up = %v, want 0", got)
	}
	if n := testutil.CollectAndCount(lm.m.lag); n != 2 {
		t.Errorf("lag series = %d, want 2 (one per partition of g1)", n)
	}
	if e := testutil.ToFloat64(lm.m.errors); e != 0 {
		t.Errorf("lag errors = %v, want 0", e)
	}
	if p := testutil.ToFloat64(lm.m.polls); p != 2 {
		t.Errorf("lag polls = %v, want 2", p)
	}
	if _, err := NewLagMonitor(LagConfig{}, cfg, quiet, prometheus.NewRegistry()); err == nil {
		t.Error("a lag monitor without groups was accepted")
	}
}

// TestClientMetricsOnePerClient runs two clients of one config on one
// registry: each gets kprom's metrics under its own client label, and a
// closed client's series go away.
func TestClientMetricsOnePerClient(t *testing.T) {
	b, cfg := startBroker(t, "")
	defer b.Close()
	reg := prometheus.NewRegistry()
	cfg.Metrics = NewClientMetrics(reg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cls []*kgo.Client
	for range 2 {
		cl, err := kgo.NewClient(cfg.Opts(quiet, kgo.DefaultProduceTopic("m"), kgo.AllowAutoTopicCreation())...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cls = append(cls, cl)
	}
	clients := func() map[string]bool {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, mf := range mfs {
			if mf.GetName() != ClientMetricsNamespace+"_produce_bytes_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "client" {
						seen[l.GetValue()] = m.GetCounter().GetValue() > 0
					}
				}
			}
		}
		return seen
	}
	// franz-go calls the batch hook after the produce promise: poll.
	checkfor.Until(t, 5*time.Second, "produce_bytes_total of producer and producer-2, both > 0", func() bool {
		got := clients()
		return len(got) == 2 && got["producer"] && got["producer-2"]
	})
	cls[1].Close()
	if got := clients(); len(got) != 1 || !got["producer"] {
		t.Fatalf("after closing one client: %v, want only producer", got)
	}

	// One option slice reused for two clients (as Watermill's subscriber
	// does) shares one named set of series until the last client closes.
	shared := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.DefaultProduceTopic("m")}, cfg.NamedClientOptions(quiet, "wm")...)
	a, err := kgo.NewClient(shared...)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := kgo.NewClient(shared...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 5*time.Second, "series of producer and wm (counting the second client of the shared hook)", func() bool {
		got := clients()
		return len(got) == 2 && got["wm"]
	})
	a.Close()
	if got := clients(); !got["wm"] {
		t.Fatalf("closing the first of two clients of a shared hook removed the series: %v", got)
	}
	b2.Close()
	if got := clients(); len(got) != 1 {
		t.Fatalf("after closing both shared clients: %v, want only producer", got)
	}
}

// BenchmarkClientMetrics produces and consumes 100k records through the
// embedded broker with and without the kprom hook: the hook runs per
// request and per batch, never per record, so the two should match.
//
//	go test ./consumers -run '^$' -bench ClientMetrics -benchtime 3x
func BenchmarkClientMetrics(b *testing.B) {
	const n = 100_000
	value := make([]byte, 200)
	for _, withMetrics := range []bool{false, true} {
		name := "plain"
		if withMetrics {
			name = "kprom"
		}
		b.Run(name, func(b *testing.B) {
			for i := range b.N {
				b.StopTimer()
				br, err := NewBroker(BrokerConfig{}, quiet)
				if err != nil {
					b.Fatal(err)
				}
				cfg := KafkaConfig{Brokers: []string{br.Addr()}}
				cfg.SetDefaults()
				if withMetrics {
					cfg.Metrics = NewClientMetrics(prometheus.NewRegistry())
				}
				topic := "bench" + strconv.Itoa(i)
				cl, err := kgo.NewClient(cfg.Opts(quiet, kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(),
					kgo.ConsumeTopics(topic), kgo.ProducerLinger(time.Millisecond), kgo.MaxBufferedRecords(n))...)
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				b.StartTimer()
				for range n {
					cl.Produce(ctx, &kgo.Record{Value: value}, nil)
				}
				if err := cl.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				for got := 0; got < n; {
					fs := cl.PollFetches(ctx)
					if err := fs.Err0(); err != nil {
						b.Fatal(err)
					}
					got += fs.NumRecords()
				}
				b.StopTimer()
				cl.Close()
				br.Close()
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
