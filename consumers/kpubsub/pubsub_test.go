package kpubsub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers/kpubsub"
)

// newCluster starts a one-broker kfake cluster that lives as long as t.
func newCluster(t *testing.T, opts ...kfake.Opt) []string {
	t.Helper()
	cluster, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatalf("cannot start kfake cluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	return cluster.ListenAddrs()
}

// pubSubFactory returns the suite's constructors for brokers. Subscribers
// made by the plain constructor share one consumer group per suite test (the
// suite expects a later subscriber to continue where an earlier one left).
func pubSubFactory(brokers []string, partitions int32) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		logger := watermill.NopLogger{}
		pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: brokers}, logger)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{
			Brokers:       brokers,
			ConsumerGroup: group,
			Partitions:    partitions,
		}, logger)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = pub.Close()
			_ = sub.Close()
		})
		return pub, sub
	}
	plain := func(t *testing.T) (message.Publisher, message.Subscriber) {
		return withGroup(t, "cg-"+t.Name())
	}
	return plain, withGroup
}

// features are the tests.Features this package claims; see doc.go for why.
var features = tests.Features{
	ConsumerGroups:                      true,
	ExactlyOnceDelivery:                 false,
	GuaranteedOrder:                     false,
	GuaranteedOrderWithSingleSubscriber: false,
	Persistent:                          true,
	RequireSingleInstance:               false,
	NewSubscriberReceivesOldMessages:    false,
	ContextPreserved:                    false,
}

// TestPubSub runs Watermill's conformance suite with the broker's default of
// ten partitions per topic.
func TestPubSub(t *testing.T) {
	t.Parallel()
	plain, withGroup := pubSubFactory(newCluster(t), 0)
	tests.TestPubSub(t, features, plain, withGroup)
}

// TestPubSubSinglePartition runs the suite again on single-partition topics,
// where Kafka's per-partition order is the topic's order, and so also claims
// GuaranteedOrder.
func TestPubSubSinglePartition(t *testing.T) {
	t.Parallel()
	plain, withGroup := pubSubFactory(newCluster(t), 1)
	ordered := features
	ordered.GuaranteedOrder = true
	tests.TestPubSub(t, ordered, plain, withGroup)
}

// TestPublishKeyMetadata checks the record a keyed message becomes, read back
// with a plain kgo consumer: KeyMetadata is the record key (so one key stays
// on one partition), the UUID and every metadata entry are headers and the
// payload is the value.
func TestPublishKeyMetadata(t *testing.T) {
	t.Parallel()
	const topic = "models"
	brokers := newCluster(t, kfake.SeedTopics(4, topic))

	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	var msgs []*message.Message
	for i := range 2 {
		msg := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf("event-%d", i)))
		msg.Metadata.Set(kpubsub.KeyMetadata, "model-42")
		msg.Metadata.Set("event_type", "model.updated")
		msgs = append(msgs, msg)
	}
	if err := pub.Publish(topic, msgs...); err != nil {
		t.Fatal(err)
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var records []*kgo.Record
	for len(records) < len(msgs) {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %d of %d records before the deadline", len(records), len(msgs))
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			t.Errorf("fetch %s/%d: %v", topic, partition, err)
		})
		records = append(records, fetches.Records()...)
	}

	for i, rec := range records {
		if got := string(rec.Key); got != "model-42" {
			t.Errorf("record %d: key = %q, want %q", i, got, "model-42")
		}
		if rec.Partition != records[0].Partition {
			t.Errorf("record %d: partition %d, want %d like record 0", i, rec.Partition, records[0].Partition)
		}
		if got, want := string(rec.Value), string(msgs[i].Payload); got != want {
			t.Errorf("record %d: value = %q, want %q", i, got, want)
		}
		headers := map[string]string{}
		for _, h := range rec.Headers {
			headers[h.Key] = string(h.Value)
		}
		want := map[string]string{
			kpubsub.UUIDHeader:  msgs[i].UUID,
			kpubsub.KeyMetadata: "model-42",
			"event_type":        "model.updated",
		}
		for k, v := range want {
			if headers[k] != v {
				t.Errorf("record %d: header %q = %q, want %q", i, k, headers[k], v)
			}
		}
	}
}
