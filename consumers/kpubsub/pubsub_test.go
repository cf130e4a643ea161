package kpubsub_test

import (
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers/kpubsub"
)

// testClientOptions make group membership changes quick against the
// in-process broker: members notice a rebalance on their next heartbeat.
func testClientOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.HeartbeatInterval(100 * time.Millisecond),
	}
}

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
		pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{
			Brokers:       brokers,
			ClientOptions: testClientOptions(),
		}, logger)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{
			Brokers:       brokers,
			ConsumerGroup: group,
			ClientOptions: testClientOptions(),
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

func TestPubSub(t *testing.T) {
	plain, withGroup := pubSubFactory(newCluster(t), 0)
	tests.TestPubSub(t, features, plain, withGroup)
}
