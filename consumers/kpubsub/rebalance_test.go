package kpubsub_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/driftline/driftline/consumers/kpubsub"
)

// TestRebalanceDoesNotWaitForIdleConsumer checks that a member whose consumer
// stopped reading does not hold a rebalance until the rebalance timeout: a
// second member of the group receives messages promptly, and once both
// channels are drained every message has arrived (the first member's polled
// but undelivered records were not lost).
func TestRebalanceDoesNotWaitForIdleConsumer(t *testing.T) {
	t.Parallel()
	const (
		topic    = "rebalance"
		group    = "rebalance-group"
		messages = 20
	)
	brokers := newCluster(t)

	newSub := func() *kpubsub.Subscriber {
		sub, err := kpubsub.NewSubscriber(kpubsub.SubscriberConfig{
			Brokers:       brokers,
			ConsumerGroup: group,
			Partitions:    2,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() })
		return sub
	}

	first := newSub()
	if err := first.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: brokers}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	want := map[string]bool{}
	for i := range messages {
		msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
		msg.Metadata.Set(kpubsub.KeyMetadata, fmt.Sprintf("key-%d", i)) // spread over both partitions
		if err := pub.Publish(topic, msg); err != nil {
			t.Fatal(err)
		}
		want[msg.UUID] = true
	}

	received := map[string]bool{}
	receive := func(msg *message.Message) {
		received[msg.UUID] = true
		msg.Ack()
	}

	// The first member delivers one message, then its consumer goes idle
	// while the member still holds the rest of its poll.
	firstCh, err := first.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-firstCh:
		receive(msg)
	case <-time.After(15 * time.Second):
		t.Fatal("first member delivered nothing")
	}

	// A second member joins; the group must hand it a partition long before
	// the 60 s rebalance timeout would evict the first member.
	secondCh, err := newSub().Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-secondCh:
		receive(msg)
	case <-time.After(20 * time.Second):
		t.Fatal("second member received nothing: the rebalance waited for the idle consumer")
	}

	// Drain both members: nothing may be missing.
	deadline := time.After(30 * time.Second)
	for len(received) < len(want) {
		select {
		case msg := <-firstCh:
			receive(msg)
		case msg := <-secondCh:
			receive(msg)
		case <-deadline:
			t.Fatalf("received %d of %d messages", len(received), len(want))
		}
	}
	for uuid := range received {
		if !want[uuid] {
			t.Errorf("unexpected message %s", uuid)
		}
	}
}
