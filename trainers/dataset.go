package trainers

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// Dataset sources recorded on schemas.Dataset.Source.
const (
	SourceLabelsTopic = "labels-topic"
	SourceFilePrefix  = "file:"
)

// sortRows puts a training set in training order: by event time, then
// event id, so a replay that reads partitions in another interleaving
// gives the same order; rows without either (a plain {"values","label"}
// file) keep the order given.
func sortRows(rows []schemas.Label) {
	slices.SortStableFunc(rows, func(a, b schemas.Label) int {
		if c := a.EventTime.Compare(b.EventTime); c != 0 {
			return c
		}
		return strings.Compare(a.EventID, b.EventID)
	})
}

// TrainingOrder returns a copy of rows in the order training and
// Fingerprint see them.
func TrainingOrder(rows []schemas.Label) []schemas.Label {
	rows = slices.Clone(rows)
	sortRows(rows)
	return rows
}

// Fingerprint identifies a training set given in training order (see
// sortRows): its row count, event-time range and the hex SHA-256 over,
// per row, the float64 values as little-endian IEEE 754 bits followed by
// one byte for the label. Event times, ids and scores are not hashed, so a
// plain {"values","label"} file written in the same order has the same
// hash as the labels it came from.
func Fingerprint(rows []schemas.Label, source string) schemas.Dataset {
	h := sha256.New()
	var buf []byte
	for _, r := range rows {
		buf = buf[:0]
		for _, v := range r.Values {
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(v))
		}
		buf = append(buf, byte(r.Label))
		h.Write(buf)
	}
	d := schemas.Dataset{Rows: len(rows), SHA256: hex.EncodeToString(h.Sum(nil)), Source: source}
	if len(rows) > 0 {
		d.From, d.To = rows[0].EventTime, rows[len(rows)-1].EventTime
	}
	return d
}

// ReadLabels reads a JSON-lines training file: one object a line, either a
// plain {"values":[...],"label":0|1} (the format of testdata/train) or a
// whole schemas.Label as the labels topic carries it (event_time is then
// used for the training order and the holdout split). Blank lines are
// skipped; every row must have the same number of values.
func ReadLabels(r io.Reader) ([]schemas.Label, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), 1<<24)
	var rows []schemas.Label
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var l schemas.Label
		if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("cannot decode training row on line %d: %w", line, err)
		}
		if l.Label != 0 && l.Label != 1 {
			return nil, fmt.Errorf("cannot use training row on line %d: label %d is not 0 or 1", line, l.Label)
		}
		if len(rows) > 0 && len(l.Values) != len(rows[0].Values) {
			return nil, fmt.Errorf("cannot use training row on line %d: %d values, the first row has %d", line, len(l.Values), len(rows[0].Values))
		}
		rows = append(rows, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cannot read training rows: %w", err)
	}
	return rows, nil
}

// WriteLabels writes rows as JSON lines, one schemas.Label each (readable
// by ReadLabels and by the GPU contract's trainer).
func WriteLabels(w io.Writer, rows []schemas.Label) error {
	bw := bufio.NewWriter(w)
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("cannot encode training row: %w", err)
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write training rows: %w", err)
	}
	return nil
}

// TrainingSource gives the labelled vectors of a model whose served vector
// has event time in [from, to]. The labels topic (LabelReplay) is one; a
// ClickHouse-backed source can be another (issue 6's sink owns the table).
type TrainingSource interface {
	TrainingRows(ctx context.Context, model string, from, to time.Time) ([]schemas.Label, error)
}

// LabelReplay replays the labels topic by timestamp. The feature stage
// stamps each label record with the served vector's event time, so the
// replay starts on every partition at the first record stamped at or after
// from, reads up to the end offsets listed when it starts, and keeps the
// rows in [from, to]. The labels carry the vector that was served (never a
// recomputed one), so the rows are point-in-time correct.
type LabelReplay struct {
	Kafka consumers.KafkaConfig
	Log   *slog.Logger
}

// replayIdle is how long a replay waits on partitions that return nothing
// before it takes them as read to their end.
const replayIdle = 2 * time.Second

// TrainingRows implements TrainingSource.
func (lr LabelReplay) TrainingRows(ctx context.Context, model string, from, to time.Time) ([]schemas.Label, error) {
	topic := lr.Kafka.Topics.Labels
	log := lr.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	adm, err := kgo.NewClient(lr.Kafka.Opts(log)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create label replay client: %w", err)
	}
	defer adm.Close()
	ac := kadm.NewClient(adm)
	ends, err := ac.ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("cannot list end offsets of %s: %w", topic, err)
	}
	starts, err := ac.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	if err != nil {
		return nil, fmt.Errorf("cannot list offsets of %s after %s: %w", topic, from.Format(time.RFC3339), err)
	}
	offsets := map[int32]kgo.Offset{}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil || o.Offset <= 0 {
			return
		}
		s, ok := starts.Lookup(topic, o.Partition)
		if !ok || s.Err != nil || s.Offset >= o.Offset {
			return
		}
		offsets[o.Partition] = kgo.NewOffset().At(max(s.Offset, 0))
		pending[o.Partition] = o.Offset
	})
	var rows []schemas.Label
	if len(pending) == 0 {
		return rows, nil
	}
	cl, err := kgo.NewClient(lr.Kafka.Opts(log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create label replay client: %w", err)
	}
	defer cl.Close()
	for len(pending) > 0 {
		// A partition's end can be a transaction marker, never returned as
		// a record: a partition that returns nothing for replayIdle is
		// read to its end.
		pctx, cancel := context.WithTimeout(ctx, replayIdle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("cannot replay %s: %w", topic, err)
		}
		if fetches.NumRecords() == 0 {
			if err := fetches.Err0(); err == nil || errors.Is(err, context.DeadlineExceeded) {
				break
			}
		}
		var ferr error
		fetches.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("cannot fetch %s/%d: %w", topic, p, err)
			}
		})
		if ferr != nil {
			return nil, ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, ok := pending[r.Partition]
			if !ok {
				return
			}
			if r.Offset+1 >= end {
				delete(pending, r.Partition)
			}
			if r.Offset >= end {
				return
			}
			var l schemas.Label
			if err := json.Unmarshal(r.Value, &l); err != nil {
				log.Warn("cannot decode label; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if l.Model == model && !l.EventTime.Before(from) && !l.EventTime.After(to) {
				rows = append(rows, l)
			}
		})
	}
	return rows, nil
}
