package kpubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrSubscriberClosed is returned by Subscribe and SubscribeInitialize after
// Close.
var ErrSubscriberClosed = errors.New("subscriber is closed")

// Defaults for the zero values of SubscriberConfig.
const (
	// DefaultNackResendSleep is the pause before a nacked message is
	// redelivered.
	DefaultNackResendSleep = 100 * time.Millisecond
	// DefaultMaxPollRecords caps the records taken per poll, like Kafka's
	// max.poll.records.
	DefaultMaxPollRecords = 500
)

const (
	// commitTimeout bounds each synchronous offset commit.
	commitTimeout = 30 * time.Second
	// pollErrorBackoff is the pause after a poll that returned only
	// errors, so a persistent error does not spin the poll loop.
	pollErrorBackoff = 500 * time.Millisecond
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string

	// ConsumerGroup is the Kafka consumer group every subscription joins.
	// Required: the group's committed offsets are what Ack advances and
	// where a new subscription resumes. A group that has no committed
	// offset for a partition starts at its earliest record.
	ConsumerGroup string

	// ClientOptions are extra kgo options (TLS, SASL, group timeouts, ...)
	// for every client the Subscriber creates: one per Subscribe call and
	// one for topic administration. They are appended after the
	// Subscriber's own options, so they win; overriding the group,
	// commit or rebalance behaviour voids the delivery guarantees
	// described in the package documentation.
	ClientOptions []kgo.Opt

	// InitializeTopics makes Subscribe call SubscribeInitialize first, so
	// subscribing to a missing topic creates it.
	InitializeTopics bool

	// Partitions is the partition count of topics created by
	// SubscribeInitialize; zero or less uses the broker default.
	Partitions int32

	// ReplicationFactor is the replication factor of topics created by
	// SubscribeInitialize; zero or less uses the broker default.
	ReplicationFactor int16

	// NackResendSleep is how long a partition pauses before redelivering
	// a nacked message. Zero means DefaultNackResendSleep; a negative
	// value redelivers at once.
	NackResendSleep time.Duration

	// MaxPollRecords caps the records taken from the client per poll,
	// which bounds the work a rebalance may have to wait for. Zero or less
	// means DefaultMaxPollRecords.
	MaxPollRecords int
}

func (c *SubscriberConfig) setDefaults() {
	if c.NackResendSleep == 0 {
		c.NackResendSleep = DefaultNackResendSleep
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.Partitions <= 0 {
		c.Partitions = -1
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = -1
	}
}

// Subscriber consumes Kafka topics as Watermill messages through a consumer
// group. Every Subscribe call gets its own franz-go client, i.e. its own
// group member. It is safe for concurrent use.
type Subscriber struct {
	cfg    SubscriberConfig
	logger watermill.LoggerAdapter

	adminClient *kgo.Client
	admin       *kadm.Client

	// ctx is canceled by Close; every subscription derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex // guards closed and subs.Add
	closed    bool
	subs      sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// NewSubscriber validates cfg and returns a Subscriber. Clients connect
// lazily, so an unreachable broker is not reported here. A nil logger
// discards logs.
func NewSubscriber(cfg SubscriberConfig, logger watermill.LoggerAdapter) (*Subscriber, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("cannot create subscriber: no brokers configured")
	}
	if cfg.ConsumerGroup == "" {
		return nil, errors.New("cannot create subscriber: no consumer group configured")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	cfg.setDefaults()

	adminClient, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create subscriber: %w", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	return &Subscriber{
		cfg:         cfg,
		logger:      logger.With(watermill.LogFields{"consumer_group": cfg.ConsumerGroup}),
		adminClient: adminClient,
		admin:       kadm.NewClient(adminClient),
		ctx:         ctx,
		cancel:      cancel,
	}, nil
}

// SubscribeInitialize creates topic with the configured partition count and
// replication factor unless it already exists.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if s.isClosed() {
		return fmt.Errorf("cannot create topic %q: %w", topic, ErrSubscriberClosed)
	}
	_, err := s.admin.CreateTopic(s.ctx, s.cfg.Partitions, s.cfg.ReplicationFactor, nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("cannot create topic %q: %w", topic, err)
	}
	return nil
}

// Subscribe joins the consumer group for topic with a new client and returns
// the channel its messages arrive on. The channel is unbuffered and closes
// once ctx is canceled or the Subscriber is closed, after the member has
// committed its acknowledged offsets and left the group.
//
// Within a partition, a message is delivered only after the previous one was
// acked; a nacked message is redelivered after NackResendSleep. Partitions
// are delivered concurrently.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("cannot subscribe to topic %q: %w", topic, ErrSubscriberClosed)
	}
	s.subs.Add(1)
	s.mu.Unlock()

	if s.cfg.InitializeTopics {
		if err := s.SubscribeInitialize(topic); err != nil {
			s.subs.Done()
			return nil, fmt.Errorf("cannot subscribe to topic %q: %w", topic, err)
		}
	}

	// The subscription lives until ctx is canceled or the Subscriber
	// closes; it keeps ctx's values for the messages' contexts.
	subCtx, cancel := context.WithCancel(ctx)
	stopOnClose := context.AfterFunc(s.ctx, cancel)

	sub := &subscription{
		cfg:       &s.cfg,
		ctx:       subCtx,
		out:       make(chan *message.Message),
		rebalance: make(chan struct{}, 1),
		logger:    s.logger.With(watermill.LogFields{"topic": topic}),
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumerGroup(s.cfg.ConsumerGroup),
		kgo.ConsumeTopics(topic),
		// Transactional producers' aborted records are never delivered.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Ack marks a record; marks are committed after every poll, on
		// revoke and on close. Unacked records are never committed.
		kgo.AutoCommitMarks(),
		// A rebalance waits until the polled records are handled, so a
		// record is never delivered by two members at once and commits
		// always target partitions this member owns.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsCallbackBlocked(func(context.Context, *kgo.Client) { sub.signalRebalance() }),
	}
	client, err := kgo.NewClient(append(opts, s.cfg.ClientOptions...)...)
	if err != nil {
		stopOnClose()
		cancel()
		s.subs.Done()
		return nil, fmt.Errorf("cannot subscribe to topic %q: %w", topic, err)
	}
	sub.client = client

	go func() {
		defer s.subs.Done()
		defer cancel()
		defer stopOnClose()
		sub.run()
	}()

	sub.logger.Info("Subscribed", nil)
	return sub.out, nil
}

// Close ends every subscription, waits for their channels to close and
// closes the admin client. It is idempotent and safe to call concurrently.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()

		s.cancel()
		s.subs.Wait()
		s.adminClient.Close()
		s.logger.Info("Subscriber closed", nil)
	})
	return nil
}

func (s *Subscriber) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// subscription is one Subscribe call: one client, one group member, one
// output channel.
type subscription struct {
	cfg    *SubscriberConfig
	client *kgo.Client
	logger watermill.LoggerAdapter

	// ctx is canceled when the subscription must stop.
	ctx context.Context
	out chan *message.Message

	// rebalance receives a token when a rebalance is waiting for this
	// member to finish the records of its current poll.
	rebalance chan struct{}
}

func (sub *subscription) signalRebalance() {
	select {
	case sub.rebalance <- struct{}{}:
	default:
	}
}

// run is the poll loop: poll, deliver the records, commit what was acked,
// allow a pending rebalance, repeat. On stop it commits, leaves the group and
// closes the output channel.
func (sub *subscription) run() {
	defer close(sub.out)
	defer sub.shutdown()

	for {
		fetches := sub.client.PollRecords(sub.ctx, sub.cfg.MaxPollRecords)
		if sub.ctx.Err() != nil || fetches.IsClientClosed() {
			return
		}

		fetches.EachError(func(topic string, partition int32, err error) {
			sub.logger.Error("Fetch failed", err, watermill.LogFields{"fetch_topic": topic, "partition": partition})
		})

		if fetches.NumRecords() > 0 {
			sub.handle(fetches)
		}
		sub.client.AllowRebalance()
		// A rebalance signalled during the batch has been allowed now.
		select {
		case <-sub.rebalance:
		default:
		}

		if fetches.NumRecords() == 0 && len(fetches.Errors()) > 0 {
			select {
			case <-sub.ctx.Done():
				return
			case <-time.After(pollErrorBackoff):
			}
		}
	}
}

// shutdown commits the acked offsets and leaves the group. AllowRebalance
// must precede Close: with BlockRebalanceOnPoll, leaving the group waits for
// the last poll to be released.
func (sub *subscription) shutdown() {
	sub.commit()
	sub.client.AllowRebalance()
	sub.client.Close()
	sub.logger.Info("Subscription closed", nil)
}

// commit synchronously commits the offsets of acked records.
func (sub *subscription) commit() {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	if err := sub.client.CommitMarkedOffsets(ctx); err != nil {
		// At-least-once: the records are redelivered, nothing is lost.
		sub.logger.Error("Cannot commit offsets, acked messages may be redelivered", err, nil)
	}
}

// handle delivers one poll's records, each partition in its own goroutine,
// and commits what was acked. If a rebalance asks for the member meanwhile,
// delivery stops after the messages the consumer already holds, and the
// client is rewound to the first undelivered record of each such partition,
// so it is fetched again if the partition stays with this member.
func (sub *subscription) handle(fetches kgo.Fetches) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		select {
		case <-sub.rebalance:
			sub.logger.Debug("Rebalance requested, pausing delivery", nil)
			close(stop)
		case <-done:
		}
	}()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		rewind = map[string]map[int32]kgo.EpochOffset{}
	)
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := sub.deliverPartition(p.Records, stop)
			if rec == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if rewind[rec.Topic] == nil {
				rewind[rec.Topic] = map[int32]kgo.EpochOffset{}
			}
			rewind[rec.Topic][rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}
		}()
	})
	wg.Wait()
	close(done)

	// Commit first: SetOffsets also resets the client's notion of the
	// committed offset for the partitions it rewinds.
	sub.commit()
	if len(rewind) > 0 && sub.ctx.Err() == nil {
		sub.client.SetOffsets(rewind)
	}
}

// deliverPartition delivers records in order and returns the first record
// that was not acked, or nil when all were.
func (sub *subscription) deliverPartition(records []*kgo.Record, stop <-chan struct{}) *kgo.Record {
	for _, rec := range records {
		if !sub.deliver(rec, stop) {
			return rec
		}
	}
	return nil
}

// deliver sends rec until it is acked, redelivering it after every nack. It
// returns false if it gave up: on stop before the consumer took the message
// or after a nack, and on subscription end at any point.
func (sub *subscription) deliver(rec *kgo.Record, stop <-chan struct{}) bool {
	fields := watermill.LogFields{"partition": rec.Partition, "offset": rec.Offset}
	for {
		select {
		case <-stop:
			return false
		default:
		}

		msg := toMessage(rec)
		msgCtx, cancelMsg := context.WithCancel(sub.ctx)
		msg.SetContext(msgCtx)
		fields["message_uuid"] = msg.UUID

		select {
		case sub.out <- msg:
			sub.logger.Trace("Message sent to consumer", fields)
		case <-stop:
			cancelMsg()
			return false
		case <-sub.ctx.Done():
			cancelMsg()
			return false
		}

		// The consumer holds the message: wait for its verdict even if a
		// rebalance is pending, so it is not delivered twice.
		select {
		case <-msg.Acked():
			cancelMsg()
			sub.client.MarkCommitRecords(rec)
			sub.logger.Trace("Message acked", fields)
			return true
		case <-msg.Nacked():
			cancelMsg()
			sub.logger.Trace("Message nacked, redelivering", fields)
			if !sub.pauseBeforeResend(stop) {
				return false
			}
		case <-sub.ctx.Done():
			cancelMsg()
			select {
			case <-msg.Acked(): // acked just in time: still commit it
				sub.client.MarkCommitRecords(rec)
			default:
			}
			return false
		}
	}
}

// pauseBeforeResend waits NackResendSleep and reports whether to redeliver.
func (sub *subscription) pauseBeforeResend(stop <-chan struct{}) bool {
	if sub.cfg.NackResendSleep < 0 {
		return true
	}
	timer := time.NewTimer(sub.cfg.NackResendSleep)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-stop:
		return false
	case <-sub.ctx.Done():
		return false
	}
}
