package kpubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = errors.New("publisher is closed")

// DefaultDeliveryTimeout bounds how long Publish waits for the broker to
// acknowledge a record unless ClientOptions set kgo.RecordDeliveryTimeout.
const DefaultDeliveryTimeout = 30 * time.Second

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Brokers are the seed brokers, "host:port". Required.
	Brokers []string

	// ClientOptions are extra kgo options (TLS, SASL, producer tuning, ...).
	// They are appended after the Publisher's own options, so they win.
	ClientOptions []kgo.Opt
}

// Publisher publishes Watermill messages to Kafka through one franz-go
// client. It is safe for concurrent use.
type Publisher struct {
	client *kgo.Client
	logger watermill.LoggerAdapter

	// mu is held for reading by every Publish in flight and for writing
	// by Close, so Close waits for in-flight publishes to finish.
	mu     sync.RWMutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher connected to cfg.Brokers. The client
// connects lazily: a broker that cannot be reached surfaces as a Publish
// error, not here. A nil logger discards logs.
//
// Apart from the seed brokers, the client uses kgo's defaults (idempotent
// producer, acks from all in-sync replicas, murmur2 key partitioning as in
// the Java client) except that a record the broker has not acknowledged
// within DefaultDeliveryTimeout fails instead of being retried forever;
// ClientOptions can override any of these.
func NewPublisher(cfg PublisherConfig, logger watermill.LoggerAdapter) (*Publisher, error) {
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("cannot create publisher: no brokers configured")
	}
	if logger == nil {
		logger = watermill.NopLogger{}
	}

	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.RecordDeliveryTimeout(DefaultDeliveryTimeout),
	}
	client, err := kgo.NewClient(append(opts, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create publisher: %w", err)
	}

	return &Publisher{client: client, logger: logger}, nil
}

// Publish writes msgs to topic and returns once the broker has acknowledged
// all of them, or with the first error. Messages are mapped as described in
// the package documentation; a message with KeyMetadata set is keyed by it.
//
// Messages without a key are spread over partitions, so only keyed messages
// keep their relative order.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return fmt.Errorf("cannot publish to topic %q: %w", topic, ErrPublisherClosed)
	}
	if len(msgs) == 0 {
		return nil
	}

	records := make([]*kgo.Record, len(msgs))
	for i, msg := range msgs {
		records[i] = toRecord(topic, msg)
	}

	if err := p.client.ProduceSync(context.Background(), records...).FirstErr(); err != nil {
		return fmt.Errorf("cannot publish %d message(s) to topic %q: %w", len(msgs), topic, err)
	}

	p.logger.Trace("Published messages", watermill.LogFields{"topic": topic, "count": len(msgs)})
	return nil
}

// Close waits for in-flight Publish calls to finish and closes the client.
// It is idempotent; Publish after Close returns ErrPublisherClosed.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	p.client.Close()
	return nil
}
