package features

import (
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// outputWriter holds a batch's output records (features, predictions,
// labels, window results) and their bytes: keys and JSON values share one buffer and the
// records one array, both reused once the batch's transaction has ended
// (reset), so emitting allocates nothing in steady state. The records stay
// in place until then because the producer reads them until they are
// acknowledged.
type outputWriter struct {
	buf  []byte
	recs []kgo.Record
}

// jsonFlags are json.Marshal's: the bytes equal what Marshal would produce.
const jsonFlags = json.EscapeHTML | json.SortMapKeys

// json appends a record of topic whose key is key and whose value is v
// encoded as JSON; the record is the last of w.recs.
func (w *outputWriter) json(topic, key string, ts time.Time, v any) error {
	start := len(w.buf)
	w.buf = append(w.buf, key...)
	return w.value(topic, start, ts, v)
}

// window appends a driftline.windows record: its key is the window's
// identity (schemas.AppendWindowKey), written straight into the buffer, its
// value r as JSON, its timestamp the window's end.
func (w *outputWriter) window(topic string, r *schemas.WindowResult) error {
	start := len(w.buf)
	w.buf = schemas.AppendWindowKey(w.buf, r)
	return w.value(topic, start, r.Window.To, r)
}

// value finishes a record whose key is w.buf[start:]: it appends v as JSON
// and the record.
func (w *outputWriter) value(topic string, start int, ts time.Time, v any) error {
	ks := len(w.buf)
	b, err := json.Append(w.buf, v, jsonFlags)
	if err != nil {
		w.buf = w.buf[:start]
		return fmt.Errorf("cannot encode %s record: %w", topic, err)
	}
	// An append that moved the buffer leaves the records already handed
	// out pointing into the old array, which stays alive and is no longer
	// written.
	w.buf = b
	if len(w.recs) == cap(w.recs) {
		w.recs = make([]kgo.Record, 0, max(64, 2*cap(w.recs)))
	}
	w.recs = append(w.recs, kgo.Record{Topic: topic, Key: w.buf[start:ks:ks], Value: w.buf[ks:len(w.buf):len(w.buf)], Timestamp: ts})
	return nil
}

// reset makes the buffers reusable: only once the records handed out since
// the last reset are produced or aborted.
func (w *outputWriter) reset() {
	w.buf = w.buf[:0]
	clear(w.recs) // no record keeps a context or promise of the last batch
	w.recs = w.recs[:0]
}

// detach forgets the buffers without reusing them: the records handed out
// belong to the caller (TakeOutputs).
func (w *outputWriter) detach() {
	w.buf = nil
	w.recs = nil
}
