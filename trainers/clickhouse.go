package trainers

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftline/driftline/schemas"
)

// SourceClickHouse is recorded on schemas.Dataset.Source for a training set
// read from ClickHouse's labels table.
const SourceClickHouse = "clickhouse"

// ClickHouseConfig is where a trainer reads training sets from ClickHouse:
// the labels table that the sink (consumers/chsink) writes.
type ClickHouseConfig struct {
	// DSN of the server, native protocol (the sink's --clickhouse). Empty:
	// training sets come from the labels topic only.
	DSN string `yaml:"dsn"`
	// Database of the sink's tables. Default "driftline".
	Database string `yaml:"database"`
	// Wait is how long a training waits for ClickHouse to hold every
	// labelled vector the labels-topic replay has for its window (the sink
	// commits only after ClickHouse acknowledged, so ClickHouse lags the
	// topic), or to answer at all, before the training set is taken from
	// the replay instead. Default 30s.
	Wait time.Duration `yaml:"wait"`
	// QueryTimeout bounds one query. Default 60s.
	QueryTimeout time.Duration `yaml:"query_timeout"`
}

func (c *ClickHouseConfig) setDefaults() {
	if c.Database == "" {
		c.Database = "driftline"
	}
	if c.Wait == 0 {
		c.Wait = 30 * time.Second
	}
	if c.QueryTimeout == 0 {
		c.QueryTimeout = 60 * time.Second
	}
}

// ClickHouseSource reads training sets from the labels table the sink
// writes. Each row there is a label record as the labels topic carried it:
// the vector that was served, never a recomputed one, so the rows are as
// point-in-time correct as the replay's. The table is a ReplacingMergeTree
// ordered by (model, event_id) and a redelivered label is written again;
// the query reads it FINAL, so duplicates collapse to one row per event id
// whether or not ClickHouse has merged them yet. Rows come in training
// order (event time in milliseconds, then event id), the order sortRows
// gives the replay: for labels with millisecond event times, as storefront
// events have, both sources give the same rows and so the same Fingerprint.
//
// The query runs on ClickHouse 18.16 (Debian's package) and on current
// versions: FINAL, positional parameters bound by the client, no
// server-side query parameters.
type ClickHouseSource struct {
	conn     driver.Conn
	database string
	timeout  time.Duration
}

// NewClickHouseSource opens a connection pool to cfg.DSN. It does not
// contact the server: a server that is down fails TrainingRows, not this.
func NewClickHouseSource(cfg ClickHouseConfig) (*ClickHouseSource, error) {
	cfg.setDefaults()
	opts, err := clickhouse.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("cannot parse the trainer's ClickHouse DSN: %w", err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse for training sets: %w", err)
	}
	return &ClickHouseSource{conn: conn, database: cfg.Database, timeout: cfg.QueryTimeout}, nil
}

// Close closes the connection pool.
func (s *ClickHouseSource) Close() error { return s.conn.Close() }

// trainingRowsQuery selects one model's labels with event time in
// [from, to] (milliseconds), duplicates collapsed, in training order.
const trainingRowsQuery = "SELECT model, version, score, event_id, event_time_ms, user_id, session_id, " +
	"device, country, referrer, `values`, label, reason, label_time_ms " +
	"FROM %s.labels FINAL " +
	"WHERE model = ? AND event_time_ms >= ? AND event_time_ms <= ? " +
	"ORDER BY event_time_ms, event_id"

// TrainingRows implements TrainingSource.
func (s *ClickHouseSource) TrainingRows(ctx context.Context, model string, from, to time.Time) ([]schemas.Label, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// Event times are stored in whole milliseconds: the first stored time
	// at or after from, the last at or before to.
	fromMs, toMs := from.UnixMilli(), to.UnixMilli() // both floor
	if from.After(time.UnixMilli(fromMs)) {
		fromMs++
	}
	rows := []schemas.Label{}
	if fromMs > toMs || toMs < 0 {
		return rows, nil
	}
	q, err := s.conn.Query(ctx, fmt.Sprintf(trainingRowsQuery, s.database), model, uint64(max(fromMs, 0)), uint64(toMs))
	if err != nil {
		return nil, fmt.Errorf("cannot read the training set of %s from ClickHouse: %w", model, err)
	}
	defer q.Close()
	for q.Next() {
		var (
			l                   schemas.Label
			version             uint32
			label               uint8
			eventMs, labelMs    uint64
			device, country, rf string
		)
		if err := q.Scan(&l.Model, &version, &l.Score, &l.EventID, &eventMs, &l.UserID, &l.SessionID,
			&device, &country, &rf, &l.Values, &label, &l.Reason, &labelMs); err != nil {
			return nil, fmt.Errorf("cannot read a training row of %s from ClickHouse: %w", model, err)
		}
		l.Version, l.Label = int(version), int(label)
		l.Segments = schemas.Segments{Device: device, Country: country, Referrer: rf}
		l.EventTime, l.LabelTime = fromMillis(eventMs), fromMillis(labelMs)
		rows = append(rows, l)
	}
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the training set of %s from ClickHouse: %w", model, err)
	}
	// Already in this order; sortRows is the definition both sources share.
	sortRows(rows)
	return rows, nil
}

// fromMillis undoes the sink's time columns: 0 is how it stores a zero
// time.
func fromMillis(ms uint64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(int64(ms)).UTC()
}
