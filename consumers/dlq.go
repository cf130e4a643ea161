package consumers

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// DeadLetter builds the record that keeps a rejected input in the
// dead-letter topic: the original key and value byte for byte, the original
// headers, and headers naming the source topic, partition, offset, the
// rejected field and the reason. Nothing about a bad record is lost.
func DeadLetter(dlqTopic string, src *kgo.Record, field, reason string) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(src.Headers)+5)
	h = append(h, src.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: schemas.HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: schemas.HeaderField, Value: []byte(field)},
		kgo.RecordHeader{Key: schemas.HeaderSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: schemas.HeaderSourcePartition, Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
		kgo.RecordHeader{Key: schemas.HeaderSourceOffset, Value: strconv.AppendInt(nil, src.Offset, 10)},
	)
	return &kgo.Record{
		Topic:   dlqTopic,
		Key:     append([]byte(nil), src.Key...),
		Value:   append([]byte(nil), src.Value...),
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
