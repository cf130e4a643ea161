package features

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// TestAlignPausesInputsAheadOfALaggingBacklog: an input topic-partition more
// than max_input_skew ahead of another input of its partition that still has
// unread records is paused, and resumed when that one catches up, runs out
// of backlog, or the partition's state goes away; a lagging input without
// backlog (a sparse topic) never pauses the others.
func TestAlignPausesInputsAheadOfALaggingBacklog(t *testing.T) {
	p := newStage(t, false).p
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never contacted: pausing is client-side
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := p.kafka.Topics.Inputs()
	clicks, carts, txns := p.inputs[topics[0]], p.inputs[topics[1]], p.inputs[topics[2]]
	ps := newPartState(time.Now(), p.engine())
	p.parts[3] = ps
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixMilli()
	paused := func() []string {
		var got []string
		for topic, parts := range cl.PauseFetchPartitions(nil) {
			for _, part := range parts {
				got = append(got, topic+"/"+string(rune('0'+part)))
			}
		}
		slices.Sort(got)
		return got
	}
	check := func(what string, want ...string) {
		t.Helper()
		p.align(cl, kgo.Fetches{})
		if got := paused(); !slices.Equal(got, want) {
			t.Errorf("%s: paused %v, want %v", what, got, want)
		}
		if n := len(slices.Collect(maps.Keys(p.paused))); n != len(want) {
			t.Errorf("%s: stage thinks %d inputs are paused, want %d", what, n, len(want))
		}
	}
	minute := time.Minute.Milliseconds()
	ps.clocks[clicks].maxTS, ps.clocks[carts].maxTS, ps.clocks[txns].maxTS = base, base+10*minute, base+time.Minute.Milliseconds()
	for i := range ps.clocks {
		ps.clocks[i].lastRead = time.Now()
	}
	ps.backlog[clicks] = true
	check("carts 10 min ahead of a clickstream backlog", topics[carts]+"/3")
	ps.clocks[clicks].maxTS = base + 6*minute
	check("clickstream within 5 min again")
	ps.clocks[clicks].maxTS = base
	check("ahead again", topics[carts]+"/3")
	ps.backlog[clicks] = false
	check("clickstream has no backlog left")
	ps.backlog[clicks] = true
	check("backlog again", topics[carts]+"/3")
	ps.clocks[clicks].lastRead = time.Now().Add(-2 * alignStale)
	check("the clickstream backlog delivered nothing for a while (a transactional producer's commit marker)")
	ps.clocks[clicks].lastRead = time.Now()
	check("the clickstream delivers again", topics[carts]+"/3")
	delete(p.parts, 3)
	check("state of the partition gone (revoked or aborted)")
	p.parts[3] = ps
	ps.clocks[clicks].maxTS, ps.backlog = 0, [numInputs]bool{false, false, true}
	ps.clocks[txns].maxTS = base
	check("a sparse input with backlog but never read yet, and one lagging 10 min with backlog", topics[carts]+"/3")
}

// TestAlignDoesNotStallBehindATransactionMarker: storefront producers that
// write in transactions leave a commit marker after their last record, which
// read_committed fetches never return; the high watermark stays one past the
// last record read, which looked like a backlog forever. A clickstream
// paused because it ran ahead of such a cart partition must resume, and its
// later records be handled, although nothing else arrives.
func TestAlignDoesNotStallBehindATransactionMarker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	kcfg := consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 1}
	kcfg.SetDefaults()
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	feed := consumers.NewModelFeed(kcfg, log)
	p, err := New(Config{TransactionalID: "align-test", SessionTimeout: 6 * time.Second}, kcfg, feed, log, reg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = feed.Run(ctx) }()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(sctx) }()
	defer func() { stop(); <-done }()

	prod, err := kgo.NewClient(kcfg.Opts(log, kgo.TransactionalID("storefront"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	base := time.Now().Add(-time.Hour)
	send := func(events ...schemas.Event) {
		t.Helper()
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			if err := prod.ProduceSync(ctx, &kgo.Record{Topic: kcfg.Topics.ForType(e.Type), Key: []byte(e.UserID), Value: e.AppendJSON(nil)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	ev := func(id, typ string, at time.Duration, user string) schemas.Event {
		e := schemas.NewEvent()
		e.EventID, e.Type, e.TS, e.UserID, e.SessionID = id, typ, base.Add(at).UTC().Format(time.RFC3339Nano), user, user+"-s"
		e.Device, e.Country, e.Referrer, e.Page, e.ProductID, e.Price, e.Quantity, e.CartValue, e.Items = "mobile", "DE", "direct", "/", "p1", 10, 1, 10, 1
		return e
	}
	events := func() float64 { return testutil.ToFloat64(p.m.events.WithLabelValues(kcfg.Topics.Clickstream)) }
	// The clickstream runs 10 minutes ahead of the cart partition, whose
	// only "backlog" is the commit marker behind its one record.
	send(ev("c1", schemas.AddToCart, 0, "u1"), ev("v1", schemas.PageView, 10*time.Minute, "u2"))
	checkfor.Until(t, 20*time.Second, "the first click handled", func() bool { return events() >= 1 })
	checkfor.Until(t, 5*time.Second, "the clickstream paused", p.anyPaused)
	send(ev("v2", schemas.PageView, 11*time.Minute, "u2"))
	checkfor.Until(t, 20*time.Second, "the second click handled after the clickstream resumed", func() bool { return events() >= 2 })
}
