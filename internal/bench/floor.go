package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/storefront"
)

// floorLatency measures the floor that exactly-once puts under the stage's
// latency on this broker: the same live stream (rate, simulator, producer,
// reader) through a consume-transform-produce loop that does no work at all.
// It reads the inputs with the stage's client options (a group transact
// session, read_committed, the same fetch wait), copies every cart event to
// an output topic and ends one transaction per poll, as the stage does. The
// difference between the two is what the stage itself adds; the floor is
// the broker's transaction round trips and the machine's scheduling.
func floorLatency(ctx context.Context, cfg Config, kcfg consumers.KafkaConfig, prodCl *kgo.Client, sim *storefront.Simulator) ([]float64, error) {
	fcfg := kcfg
	for _, t := range []*string{&fcfg.Topics.Clickstream, &fcfg.Topics.Cart, &fcfg.Topics.Transactions, &fcfg.Topics.Predictions} {
		*t = "bench.floor." + *t
	}
	if err := consumers.ProvisionTopics(ctx, fcfg, quiet); err != nil {
		return nil, err
	}
	assigned := make(chan struct{})
	var once sync.Once
	sess, err := kgo.NewGroupTransactSession(fcfg.Opts(quiet,
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) { once.Do(func() { close(assigned) }) }),
		kgo.ConsumerGroup("bench-floor"),
		kgo.ConsumeTopics(fcfg.Topics.Inputs()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(100*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.TransactionalID("bench-floor"),
	)...)
	if err != nil {
		return nil, err
	}
	defer sess.Close()

	lctx, stop := context.WithCancel(ctx)
	defer stop()
	loopDone := make(chan error, 1)
	go func() { loopDone <- copyLoop(lctx, sess, fcfg.Topics) }()
	// The first poll joins the group; the stream starts once it has.
	select {
	case <-assigned:
	case err := <-loopDone:
		return nil, fmt.Errorf("exactly-once floor loop stopped before joining: %w", err)
	case <-time.After(30 * time.Second):
		return nil, errors.New("exactly-once floor loop did not join its group within 30s")
	}
	lat, err := liveLatency(ctx, cfg, fcfg, prodCl, sim)
	stop()
	if lerr := <-loopDone; err == nil && lerr != nil {
		err = lerr
	}
	return lat, err
}

// copyLoop is the floor's transform: every cart record, copied as is, one
// transaction per poll.
func copyLoop(ctx context.Context, sess *kgo.GroupTransactSession, topics consumers.Topics) error {
	for {
		fetches := sess.PollRecords(ctx, 10_000)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			sess.AllowRebalance() // else Close blocks leaving the group
			return nil
		}
		if fetches.NumRecords() == 0 {
			sess.AllowRebalance()
			continue
		}
		if err := sess.Begin(); err != nil {
			return err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Topic == topics.Cart {
				sess.Produce(ctx, &kgo.Record{Topic: topics.Predictions, Key: r.Key, Value: r.Value}, nil)
			}
		})
		if err := sess.Client().Flush(ctx); err != nil && ctx.Err() == nil {
			return err
		}
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil && ctx.Err() == nil {
			return err
		}
		sess.AllowRebalance()
	}
}
