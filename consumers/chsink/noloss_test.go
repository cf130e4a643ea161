package chsink

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/internal/chtest"
)

// TestNoLossWhenClickHouseStops is issue 6's no-loss test: ClickHouse (a
// private server of this test) is stopped mid-stream for 30 s (5 s with
// -short) and restarted. Meanwhile the sink retries with backoff, fetches
// nothing and its lag grows; afterwards every event produced is in
// ClickHouse exactly once.
func TestNoLossWhenClickHouseStops(t *testing.T) {
	srv := chtest.Start(t)
	conn := chtest.Conn(t, srv.DSN)
	db := chtest.Database(t, conn)
	f := newFixture(t)
	outage := 30 * time.Second
	if testing.Short() {
		outage = 5 * time.Second
	}

	// The storefront: 100 events every 100 ms until stopped.
	var produced atomic.Int64
	stopProducing := make(chan struct{})
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; {
			select {
			case <-stopProducing:
				return
			case <-tick.C:
			}
			recs := make([]*kgo.Record, 100)
			for j := range recs {
				recs[j] = f.event(i)
				i++
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := f.cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			produced.Add(int64(len(recs)))
		}
	}()
	defer func() {
		select {
		case <-stopProducing:
		default:
			close(stopProducing)
		}
		<-producerDone
	}()

	cfg := Config{DSN: srv.DSN, Database: db, BatchRows: 5000, BatchInterval: 200 * time.Millisecond,
		MaxBackoff: 2 * time.Second, InsertTimeout: 5 * time.Second}
	s, stop := runSink(t, cfg, f.kafka, nil)
	events := func() uint64 {
		var n uint64
		if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events").Scan(&n); err != nil {
			return 0
		}
		return n
	}
	checkfor.Until(t, 60*time.Second, "the first rows in ClickHouse", func() bool { return events() >= 1000 })

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	checkfor.Until(t, 30*time.Second, "the sink to see ClickHouse fail", func() bool {
		return testutil.ToFloat64(s.m.errors.WithLabelValues(TableEvents)) > 0 && testutil.ToFloat64(s.m.failing) == 1
	})
	adm := admin(t, f)
	lagAt := func() int64 {
		lag, err := s.Lag(context.Background(), adm)
		if err != nil {
			t.Fatalf("lag: %v", err)
		}
		return lag
	}
	lagBefore := lagAt()
	// Hold the outage for its full length; the lag is what it is waited on.
	checkfor.Until(t, outage+30*time.Second, "the end of the outage", func() bool { return time.Since(down) >= outage })
	lagAfter := lagAt()
	if lagAfter <= lagBefore {
		t.Errorf("lag did not grow while ClickHouse was down: %d -> %d", lagBefore, lagAfter)
	}
	t.Logf("ClickHouse down %.0fs: sink lag %d -> %d, %v failed inserts", time.Since(down).Seconds(), lagBefore, lagAfter,
		testutil.ToFloat64(s.m.errors.WithLabelValues(TableEvents)))

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// Produce a little more after the restart, then stop the storefront.
	more := produced.Load() + 2000
	checkfor.Until(t, 30*time.Second, "more events after the restart", func() bool { return produced.Load() >= more })
	close(stopProducing)
	<-producerDone
	total := produced.Load()
	checkfor.Until(t, 120*time.Second, "every produced event in ClickHouse", func() bool { return events() >= uint64(total) })
	checkfor.Until(t, 30*time.Second, "the sink's lag back to 0", func() bool {
		lag, err := s.Lag(context.Background(), adm)
		return err == nil && lag == 0
	})
	if err := stop(); err != nil {
		t.Fatalf("sink run: %v", err)
	}
	final := chtest.Count(t, conn, "SELECT count() FROM "+db+".events FINAL")
	distinct := chtest.Count(t, conn, "SELECT uniqExact(event_id) FROM "+db+".events")
	if final != uint64(total) || distinct != uint64(total) {
		t.Fatalf("events produced %d; in ClickHouse %d (FINAL), %d distinct ids", total, final, distinct)
	}
	if testutil.ToFloat64(s.m.failing) != 0 {
		t.Errorf("driftline_sink_failing still 1 after recovery")
	}
	t.Logf("%d events produced, %d in ClickHouse after a %s outage", total, final, outage)
}
