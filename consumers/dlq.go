package consumers

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// MaxDeadLetterBytes is the largest value a dead letter carries whole. A
// bigger one (Kafka accepts records up to ~1 MiB by default, more than the
// producer's batch limit once headers are added) is cut to this size, with
// the original size and SHA-256 in headers, so one huge record can never
// make the DLQ write, and with it the pipeline, fail.
const MaxDeadLetterBytes = 256 << 10

// DeadLetter builds the record that keeps a rejected input in the
// dead-letter topic: the original key and value byte for byte (values over
// MaxDeadLetterBytes cut, see there), the original headers, and headers
// naming the source topic, partition, offset, the rejected field and the
// reason.
func DeadLetter(dlqTopic string, src *kgo.Record, field, reason string) *kgo.Record {
	value := src.Value
	h := make([]kgo.RecordHeader, 0, len(src.Headers)+7)
	h = append(h, src.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: schemas.HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: schemas.HeaderField, Value: []byte(field)},
		kgo.RecordHeader{Key: schemas.HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: schemas.HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		kgo.RecordHeader{Key: schemas.HeaderSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	)
	if len(value) > MaxDeadLetterBytes {
		sum := sha256.Sum256(value)
		h = append(h,
			kgo.RecordHeader{Key: schemas.HeaderOriginalBytes, Value: strconv.AppendInt(nil, int64(len(value)), 10)},
			kgo.RecordHeader{Key: schemas.HeaderOriginalSHA256, Value: []byte(hex.EncodeToString(sum[:]))},
		)
		value = value[:MaxDeadLetterBytes]
	}
	return &kgo.Record{
		Topic:   dlqTopic,
		Key:     append([]byte(nil), src.Key...),
		Value:   append([]byte(nil), value...),
		Headers: h,
	}
}

// Header returns the value of the first header named key, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
