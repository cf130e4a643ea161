package kpubsub

import (
	"fmt"
	"sort"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// KeyMetadata is the metadata key whose value, when set on a published
// message, becomes the Kafka record key. Records with the same key land on
// the same partition, so all events of one model stay ordered.
//
// The entry is also written as a record header like any other metadata. On
// the consuming side a record's key is exposed under KeyMetadata when the
// record carries no such header (for example when it was produced by a
// non-Watermill producer).
const KeyMetadata = "kafka_key"

// UUIDHeader is the record header that carries a message's Watermill UUID.
const UUIDHeader = "_watermill_message_uuid"

// toRecord maps msg onto a record for topic: the UUID goes into UUIDHeader,
// every metadata entry becomes a header (in key order, so the wire format is
// deterministic), the payload becomes the value and KeyMetadata, when
// non-empty, becomes the key.
func toRecord(topic string, msg *message.Message) *kgo.Record {
	rec := &kgo.Record{
		Topic:   topic,
		Value:   msg.Payload,
		Headers: make([]kgo.RecordHeader, 0, len(msg.Metadata)+1),
	}
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: UUIDHeader, Value: []byte(msg.UUID)})

	keys := make([]string, 0, len(msg.Metadata))
	for k := range msg.Metadata {
		if k != UUIDHeader {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(msg.Metadata[k])})
	}

	if key := msg.Metadata.Get(KeyMetadata); key != "" {
		rec.Key = []byte(key)
	}
	return rec
}

// toMessage maps a consumed record back onto a message; it is the inverse of
// toRecord. A record without UUIDHeader gets the stable UUID
// "kafka:<topic>:<partition>:<offset>", so redeliveries of it still share one
// UUID.
func toMessage(rec *kgo.Record) *message.Message {
	var uuid string
	metadata := make(message.Metadata, len(rec.Headers))
	for _, h := range rec.Headers {
		if h.Key == UUIDHeader {
			uuid = string(h.Value)
			continue
		}
		metadata[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = fmt.Sprintf("kafka:%s:%d:%d", rec.Topic, rec.Partition, rec.Offset)
	}
	if _, ok := metadata[KeyMetadata]; !ok && len(rec.Key) > 0 {
		metadata[KeyMetadata] = string(rec.Key)
	}

	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = metadata
	return msg
}
