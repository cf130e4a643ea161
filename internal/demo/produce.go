package demo

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// Pace drives a simulator forward in event time and produces its events,
// keyed by user_id, to the storefront topics.
type Pace struct {
	// Step is the event time produced per tick. Default 1m.
	Step time.Duration
	// Speed is event time per wall second; 0 produces as fast as the
	// broker takes it.
	Speed time.Duration
	// BadEvery, when > 0, corrupts every n-th record (alternately
	// truncated JSON and a negative price) to exercise the dead-letter path.
	BadEvery int
}

// Producer writes simulated events to Kafka.
type Producer struct {
	cl     *kgo.Client
	topics consumers.Topics
	pace   Pace
	n      int
	bad    int
	failed atomic.Pointer[error] // first asynchronous produce error
}

// NewProducer wraps a client; the caller closes it.
func NewProducer(cl *kgo.Client, topics consumers.Topics, pace Pace) *Producer {
	if pace.Step == 0 {
		pace.Step = time.Minute
	}
	return &Producer{cl: cl, topics: topics, pace: pace}
}

// Produced is the number of records produced, and how many were corrupted
// on purpose.
func (p *Producer) Produced() (records, corrupted int) { return p.n, p.bad }

// Advance produces every event up to event time t, pacing by wall clock.
func (p *Producer) Advance(ctx context.Context, sim *storefront.Simulator, to time.Time) error {
	var ferr error
	start := time.Now()
	from := sim.Now()
	for t := from; t.Before(to) && ferr == nil; {
		t = t.Add(p.pace.Step)
		if t.After(to) {
			t = to
		}
		sim.Advance(t, func(e *schemas.Event) {
			if ferr != nil {
				return
			}
			ferr = p.produce(ctx, e)
		})
		if p.pace.Speed > 0 {
			due := start.Add(time.Duration(float64(t.Sub(from)) / float64(p.pace.Speed) * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(d):
				}
			}
		}
	}
	return ferr
}

func (p *Producer) produce(ctx context.Context, e *schemas.Event) error {
	topic := p.topics.ForType(e.Type)
	v := e.AppendJSON(make([]byte, 0, 384))
	p.n++
	if p.pace.BadEvery > 0 && p.n%p.pace.BadEvery == 0 {
		p.bad++
		if p.bad%2 == 1 {
			v = v[:len(v)/2] // truncated in flight
		} else {
			v = append([]byte(`{"price":-3,`), v[1:]...) // a producer bug
		}
	}
	rec := &kgo.Record{Topic: topic, Key: []byte(e.UserID), Value: v}
	p.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			p.failed.CompareAndSwap(nil, &err)
		}
	})
	if err := p.failed.Load(); err != nil {
		return fmt.Errorf("cannot produce storefront events: %w", *err)
	}
	return nil
}
