// Package kpubsub is a Watermill message.Publisher and message.Subscriber
// backed by Kafka through franz-go (kgo).
//
// The package owns the mapping between Watermill messages and Kafka records,
// synchronous publishing, consumer-group subscriptions (one kgo client, i.e.
// one group member, per Subscribe call), offset commits driven by Ack, and
// topic creation for SubscribeInitialize. It does not own serialization of
// payloads, retries of failed handlers beyond redelivery on Nack, or broker
// configuration.
//
// # Message mapping
//
// A message becomes one record: the payload is the value, the UUID is the
// header UUIDHeader ("_watermill_message_uuid"), and every metadata entry is a
// header of the same name. If the metadata entry KeyMetadata ("kafka_key") is
// set, its value is also the record key, so all messages with that key go to
// one partition and keep their order (use the model's ID to keep one model's
// events ordered). Consuming reverses the mapping. The message context is not
// transported.
//
// # Delivery
//
// Within a partition, a message is delivered only after the previous one was
// acked; a nacked message is redelivered after NackResendSleep. Different
// partitions are delivered concurrently on the same channel, but the member
// polls again only when every partition of its last poll is done, so a slow
// or repeatedly nacked message holds up its other partitions. Ack marks the
// record's offset, and marked offsets are committed synchronously after every
// poll, before a rebalance and when the subscription ends; an unacked record
// is never committed. Delivery is therefore at-least-once: a message whose
// ack was not committed (crash, lost commit, member evicted) is delivered
// again, possibly to another member of the group.
//
// Rebalances are blocked while a member works through its polled records
// (kgo.BlockRebalanceOnPoll), so a partition is never delivered by two
// members at once. When a rebalance is waiting, the member stops handing out
// new messages at once, waits only for the verdicts on messages its consumer
// already holds, commits, and rewinds its undelivered records so they are
// fetched again if it keeps the partition. A consumer that never acks or
// nacks a message it took still holds up the group until the rebalance
// timeout.
//
// # Conformance
//
// The package passes Watermill's pubsub/tests.TestPubSub suite against
// franz-go's in-process kfake broker with these tests.Features:
//
//   - ConsumerGroups: true. Subscribers configured with the same
//     ConsumerGroup share the work; different groups each get every message.
//   - Persistent: true. Messages outlive publishers and subscribers, and a
//     new subscriber resumes from its group's committed offsets.
//   - ExactlyOnceDelivery: false. Delivery is at-least-once (see above).
//   - GuaranteedOrder: false for topics with several partitions: unkeyed
//     messages are spread over partitions, and partitions are delivered
//     concurrently, so neither topic-wide order nor one-message-at-a-time
//     delivery (the suite's TestNoAck) holds. Order is guaranteed per
//     partition, hence per KeyMetadata value; the suite is run a second time
//     on single-partition topics with GuaranteedOrder: true and passes.
//   - NewSubscriberReceivesOldMessages: false. A new subscriber in an
//     existing group continues from the group's offsets; only a new group
//     starts from the earliest record.
//   - ContextPreserved: false. Contexts are not transported over Kafka.
//   - RestartServiceCommand: unset. The in-process broker cannot be
//     restarted by a command, so the suite's TestReconnect is skipped.
package kpubsub
