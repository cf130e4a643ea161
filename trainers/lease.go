package trainers

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
)

// lease is a group-assigned lease: every Shadow component joins one
// consumer group on the registry topic, which has one partition, so the
// group coordinator assigns that partition — the lease — to exactly one
// member; the others wait. A member that leaves, crashes or stops
// heartbeating loses it and another member gets it after the group
// rebalances (Kafka revokes a partition from its old member before
// assigning it to the new one). Nothing is consumed through it and no
// offset is committed: the feed reads the registry.
type lease struct {
	kafka consumers.KafkaConfig
	group string
	log   *slog.Logger
	held  atomic.Bool
	gen   atomic.Int64 // incremented each time the lease is acquired
}

// Held reports whether this member holds the lease now.
func (l *lease) Held() bool { return l.held.Load() }

// run keeps the member in the group until ctx ends.
func (l *lease) run(ctx context.Context) error {
	topic := l.kafka.Topics.Models
	set := func(assigned map[string][]int32, to bool) {
		for _, p := range assigned[topic] {
			if p == 0 {
				if to && !l.held.Load() {
					l.gen.Add(1)
				}
				l.held.Store(to)
				l.log.Info("decision lease", "held", to, "group", l.group)
			}
		}
	}
	cl, err := kgo.NewClient(l.kafka.Opts(l.log,
		kgo.ConsumerGroup(l.group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.SessionTimeout(10*time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { set(a, true) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { set(a, false) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, a map[string][]int32) { set(a, false) }),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create decision lease client: %w", err)
	}
	defer func() {
		l.held.Store(false)
		cl.Close()
	}()
	for {
		// Polling keeps the member live; the records (registry moves,
		// which the feed reads anyway) are dropped.
		cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
	}
}
