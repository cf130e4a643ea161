package features

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// steadyStream is a storefront stream over a fixed population: users users
// with one session each, one event per second of event time on all three
// input topics (views, carts that trigger a prediction, purchases), for n
// events. Keys stop being created after the first round, and labels resolve
// (by purchase or by the horizon) as event time moves: what is left is the
// per-event work of the hot path.
func steadyStream(users, n int) []*kgo.Record {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	recs := make([]*kgo.Record, 0, n)
	for i := range n {
		u := "u-" + strconv.Itoa(i%users)
		e := schemas.NewEvent()
		e.EventID, e.TS, e.UserID, e.SessionID = "e-"+strconv.Itoa(i), t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339), u, "s-"+u
		e.Device, e.Country, e.Referrer = "mobile", "DE", "search"
		switch i % 10 {
		case 0, 1, 2, 3, 4:
			e.Type, e.ProductID, e.Price = schemas.ProductView, "p-"+strconv.Itoa(i%7), float64(10+i%50)
		case 5, 6, 7, 8:
			e.Type, e.ProductID, e.Price, e.Quantity = schemas.AddToCart, "p-"+strconv.Itoa(i%7), float64(10+i%50), 1
		default: // a purchase now and then (some carts are labelled positive, most negative), page views otherwise
			e.Type, e.Page = schemas.PageView, "/home"
			if i%1000 == 9 {
				e.Type, e.Page, e.OrderID, e.Amount, e.Currency = schemas.Purchase, "", fmt.Sprintf("o-%d", i), 42, "EUR"
			}
		}
		recs = append(recs, &kgo.Record{Topic: schemas.TopicOf(e.Type), Key: []byte(u), Value: e.AppendJSON(nil), Timestamp: time.Now()})
	}
	return recs
}

// TestHandleAllocatesNothingPerEvent guards the hot path's zero-allocation
// target (issue 3, STYLE.md rule 7): once the keys of a stream exist,
// decoding, validating, the window engine, the vector, scoring, labels, the
// JSON outputs and the changelog records of a batch allocate nothing. Output
// records and their bytes are reused once a batch has ended, resolved
// pending labels and dropped sessions are reused with their buffers.
func TestHandleAllocatesNothingPerEvent(t *testing.T) {
	const users, warm, measured = 49, 20_000, 10_000 // 49: every user sees every event type
	recs := steadyStream(users, warm+measured+1)
	p := newStage(t, true).p
	i := 0
	step := func() {
		p.handle(recs[i])
		i++
		if i%256 == 0 { // a batch boundary, as Run's transactions have
			p.FlushOutputs(func([]*kgo.Record) {})
		}
	}
	for range warm {
		step()
	}
	pos, neg, preds := testutil.ToFloat64(p.positives), testutil.ToFloat64(p.negatives), testutil.ToFloat64(p.m.predictions)
	allocs := testing.AllocsPerRun(measured, step)
	if allocs != 0 {
		t.Errorf("hot path allocates %.2f times per event in steady state, want 0", allocs)
	}
	pos, neg, preds = testutil.ToFloat64(p.positives)-pos, testutil.ToFloat64(p.negatives)-neg, testutil.ToFloat64(p.m.predictions)-preds
	if pos == 0 || neg == 0 || preds < measured/4 {
		t.Errorf("measured window emitted %.0f predictions, %.0f positive and %.0f negative labels: it must exercise all of them", preds, pos, neg)
	}
	ps := p.parts[0]
	if len(ps.freeLabels) == 0 || len(ps.queue) == 0 {
		t.Errorf("the stream resolved no label through the queue (free %d, queued %d): the test measures nothing", len(ps.freeLabels), len(ps.queue))
	}
}
