package chsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sync/errgroup"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// Sink copies Driftline's topics into ClickHouse. Build it with New, run it
// with Run.
type Sink struct {
	cfg   Config
	kafka consumers.KafkaConfig
	log   *slog.Logger
	m     *metrics

	// mu is held by the poll loop while it adds to and hands off the
	// current batch, and by the revoke callback, so the two never touch it
	// at once. The writer goroutine owns a batch from hand-off until it
	// returns it to spare.
	mu  sync.Mutex
	dec schemas.Decoder
	ev  schemas.Event
	b   *batch // the batch being filled
	tm  map[string]tableMetrics

	// Two batches exist: one filling, one being written. toWriter hands a
	// full one over (nil once the loop has stopped); spare returns the
	// written one; failed is closed when the writer stopped for good,
	// with the reason in failErr.
	toWriter chan *batch
	spare    chan *batch
	failed   chan struct{}
	failErr  error

	conn driver.Conn

	closeOnce sync.Once
}

// batch is one pending batch of every table, the dead letters found while
// filling it, and the offsets to commit once all of it is acknowledged.
type batch struct {
	tables  []*table
	events  *eventRows
	feats   *featureRows
	preds   *predictionRows
	labels  *labelRows
	windows *windowRows
	alerts  *alertRows
	reports *reportRows
	retrain *retrainRows
	vers    *versionRows
	aliases *aliasRows
	dlq     *deadLetterRows
	out     []*kgo.Record // dead letters, produced before the commit
	offsets map[string]map[int32]kgo.EpochOffset
	// done, when set, is closed once the batch is written and committed.
	done chan struct{}
}

func newBatch() *batch {
	b := &batch{
		events: newEventRows(), feats: newFeatureRows(), preds: newPredictionRows(), labels: newLabelRows(), windows: newWindowRows(),
		alerts: newAlertRows(), reports: newReportRows(), retrain: newRetrainRows(), vers: newVersionRows(), aliases: newAliasRows(),
		dlq: newDeadLetterRows(),
	}
	b.tables = []*table{
		b.events.table, b.feats.table, b.preds.table, b.labels.table, b.windows.table, b.alerts.table, b.reports.table,
		b.retrain.table, b.vers.table, b.aliases.table, b.dlq.table,
	}
	return b
}

func (b *batch) reset() {
	for _, t := range b.tables {
		t.reset()
	}
	clear(b.out)
	b.out = b.out[:0]
	b.offsets = nil
	b.done = nil
}

type tableMetrics struct {
	rows   prometheus.Counter
	batch  prometheus.Observer
	secs   prometheus.Observer
	errors prometheus.Counter
}

// New builds a sink. reg receives its metrics.
func New(cfg Config, kafka consumers.KafkaConfig, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	kafka.SetDefaults()
	if err := kafka.Validate(); err != nil {
		return nil, err
	}
	s := &Sink{
		cfg: cfg, kafka: kafka, log: log.With("role", "sink"), m: newMetrics(reg),
		b: newBatch(), tm: map[string]tableMetrics{},
	}
	t := kafka.Topics
	s.dec.Topics = schemas.InputTopics{Clickstream: t.Clickstream, Cart: t.Cart, Transactions: t.Transactions}
	ddl := schemas.ClickHouseTables()
	for _, tb := range s.b.tables {
		if err := sameColumns(tb, ddl[tb.name]); err != nil {
			return nil, err
		}
		s.tm[tb.name] = tableMetrics{
			rows: s.m.rows.WithLabelValues(tb.name), batch: s.m.batchRows.WithLabelValues(tb.name),
			secs: s.m.insertSecs.WithLabelValues(tb.name), errors: s.m.errors.WithLabelValues(tb.name),
		}
	}
	return s, nil
}

// sameColumns checks that the sink writes exactly the DDL's columns.
func sameColumns(t *table, ddl []schemas.ClickHouseColumn) error {
	want := make([]string, len(ddl))
	for i, c := range ddl {
		want[i] = c.Name
	}
	have := t.columnNames()
	if !slices.Equal(slices.Sorted(slices.Values(have)), slices.Sorted(slices.Values(want))) {
		return fmt.Errorf("cannot write table %s: the sink writes columns %v, schemas/clickhouse defines %v", t.name, have, want)
	}
	return nil
}

// Topics are the topics the sink reads.
func (s *Sink) Topics() []string {
	t := s.kafka.Topics
	return []string{t.Clickstream, t.Cart, t.Transactions, t.Features, t.Predictions, t.Labels, t.Windows,
		t.Alerts, t.Reports, t.Retrain, t.Models, t.DLQ}
}

// Group is the sink's consumer group.
func (s *Sink) Group() string { return s.cfg.Group }

// Run connects to ClickHouse (waiting for it, with backoff, if it is down),
// applies the DDL and copies records until ctx ends. Shutdown order: stop
// fetching, send pending batches (retrying for at most ShutdownTimeout),
// produce dead letters, commit offsets, leave the group.
func (s *Sink) Run(ctx context.Context) error {
	defer s.Close()
	if err := s.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	cl, err := kgo.NewClient(s.kafka.Opts(s.log,
		kgo.ConsumerGroup(s.cfg.Group),
		kgo.ConsumeTopics(s.Topics()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Outputs of aborted transactions (the feature stage writes in
		// transactions) never reach ClickHouse.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers are returned (and skipped in add) so the
		// committed offsets move past them: a caught-up sink has lag 0.
		kgo.KeepControlRecords(),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(s.revoke),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create sink client: %w", err)
	}
	defer func() {
		cl.AllowRebalance() // Close hangs on a blocked rebalance (KAFKA.md)
		cl.Close()
	}()
	s.log.Info("sink running", "clickhouse", s.cfg, "topics", strings.Join(s.Topics(), ","))
	toWriter := make(chan *batch)
	s.mu.Lock()
	s.toWriter, s.spare, s.failed = toWriter, make(chan *batch, 1), make(chan struct{})
	s.mu.Unlock()
	s.spare <- newBatch()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writer(ctx, cl, toWriter)
	}()
	defer func() {
		// Before the client closes (and a last revoke runs): nothing is
		// handed off any more.
		s.mu.Lock()
		s.toWriter = nil
		s.mu.Unlock()
		close(toWriter)
		<-writerDone
	}()
	for {
		s.mu.Lock()
		wait := s.untilDue(time.Now())
		s.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollRecords(pctx, s.cfg.BatchRows)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("fetch failed", "topic", t, "partition", p, "err", err)
			}
		})
		done := ctx.Err() != nil
		s.mu.Lock()
		now := time.Now()
		fetches.EachRecord(func(r *kgo.Record) { s.add(r, now) })
		var ferr error
		switch {
		case done:
			// Shutdown: the last batch, written and committed before
			// the client leaves the group.
			ferr = s.handOff(cl, true)
		case s.due(time.Now()):
			ferr = s.handOff(cl, false)
		}
		s.mu.Unlock()
		cl.AllowRebalance()
		if ferr != nil {
			return ferr
		}
		if done {
			return nil
		}
	}
}

// handOff gives the current batch, with the offsets of everything polled
// into it, to the writer and continues with the spare one: the next batch
// is polled and decoded while ClickHouse takes this one. It blocks while
// the writer is still busy with the previous batch (at most two batches
// exist, so memory stays bounded and a failing ClickHouse stops the
// fetching), and with wait until this batch is written and committed.
// Callers hold mu.
func (s *Sink) handOff(cl *kgo.Client, wait bool) error {
	b := s.b
	b.offsets = cl.UncommittedOffsets()
	var done chan struct{} // b itself belongs to the writer once handed over
	if wait {
		done = make(chan struct{})
		b.done = done
	}
	select {
	case s.toWriter <- b:
	case <-s.failed:
		return s.failErr
	}
	select {
	case s.b = <-s.spare:
	case <-s.failed:
		return s.failErr
	}
	if wait {
		select {
		case <-done:
		case <-s.failed:
			return s.failErr
		}
	}
	return nil
}

// writer writes the batches handed to it, in order, until toWriter closes
// or writing one fails for good (only at shutdown, see insertRetrying).
func (s *Sink) writer(ctx context.Context, cl *kgo.Client, in <-chan *batch) {
	for b := range in {
		if err := s.write(ctx, cl, b); err != nil {
			s.failErr = err
			close(s.failed)
			for range in {
				// Nothing more is written or committed; the records are
				// read again after a restart.
			}
			return
		}
		if b.done != nil {
			close(b.done)
		}
		b.reset()
		s.spare <- b
	}
}

// untilDue is how long the next poll may wait before the oldest pending
// batch is due.
func (s *Sink) untilDue(now time.Time) time.Duration {
	wait := s.cfg.BatchInterval
	for _, t := range s.b.tables {
		if t.rows > 0 {
			wait = min(wait, t.since.Add(s.cfg.BatchInterval).Sub(now))
		}
	}
	return max(wait, time.Millisecond)
}

// due reports whether a batch is full or old enough to send.
func (s *Sink) due(now time.Time) bool {
	for _, t := range s.b.tables {
		if t.rows >= s.cfg.BatchRows || (t.rows > 0 && now.Sub(t.since) >= s.cfg.BatchInterval) {
			return true
		}
	}
	return len(s.b.out) > 0
}

// add routes one record to its table's batch.
func (s *Sink) add(r *kgo.Record, now time.Time) {
	if r.Attrs.IsControl() {
		return
	}
	t := s.kafka.Topics
	var err error
	switch r.Topic {
	case t.Clickstream, t.Cart, t.Transactions:
		s.ev.Reset()
		if s.dec.Decode(r.Topic, r.Value, &s.ev) != nil {
			s.m.skipped.WithLabelValues("invalid").Inc()
			return
		}
		s.b.events.add(&s.ev, r, now)
	case t.Features:
		var v schemas.FeatureVector
		if err = decode(r.Value, &v); err == nil {
			s.b.feats.add(&v, r, now)
		}
	case t.Predictions:
		var v schemas.Prediction
		if err = decode(r.Value, &v); err == nil {
			s.b.preds.add(&v, r, now)
		}
	case t.Labels:
		var v schemas.Label
		if err = decode(r.Value, &v); err == nil {
			s.b.labels.add(&v, r, now)
		}
	case t.Windows:
		var v schemas.WindowResult
		if err = decode(r.Value, &v); err == nil {
			s.b.windows.add(&v, r, now)
		}
	case t.Alerts:
		var v schemas.Alert
		if err = decode(r.Value, &v); err == nil {
			s.b.alerts.add(&v, now)
		}
	case t.Reports:
		var v schemas.Report
		if err = decode(r.Value, &v); err == nil {
			s.b.reports.add(&v, now)
		}
	case t.Retrain:
		var v schemas.RetrainRequest
		if err = decode(r.Value, &v); err == nil {
			s.b.retrain.add(&v, now)
		}
	case t.Models:
		err = s.addRegistry(r, now)
	case t.DLQ:
		s.b.dlq.add(r, func(k string) string { return consumers.Header(r, k) }, now)
	}
	if err != nil {
		s.m.deadLetters.Inc()
		s.log.Warn("cannot decode record; dead-lettered", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		s.b.out = append(s.b.out, consumers.DeadLetter(t.DLQ, r, "", "sink: "+err.Error()))
	}
}

func (s *Sink) addRegistry(r *kgo.Record, now time.Time) error {
	if r.Value == nil {
		return nil // a tombstone: nothing to record
	}
	var rec schemas.RegistryRecord
	if err := decode(r.Value, &rec); err != nil {
		return err
	}
	switch {
	case rec.Kind == schemas.RegistryVersion && rec.Version != nil:
		return s.b.vers.add(rec.Version, now)
	case rec.Kind == schemas.RegistryAlias && rec.Alias != nil:
		s.b.aliases.add(rec.Alias, now)
		return nil
	}
	return fmt.Errorf("registry record of kind %q without its body", rec.Kind)
}

// decode reads a derived record. Its strings point into the record's value
// (zero copy), which stays alive until the batch holding them is sent.
func decode(b []byte, v any) error {
	if _, err := json.Parse(b, v, json.ZeroCopy); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

// write sends every table of a batch (each retried until ClickHouse
// acknowledges it), produces the batch's dead letters, and only then
// commits the offsets of everything polled into it.
//
// Tables are sent concurrently, each on its own connection of the pool:
// the server parses and merges one block while the next is encoded.
func (s *Sink) write(ctx context.Context, cl *kgo.Client, b *batch) error {
	var g errgroup.Group
	for _, t := range b.tables {
		if t.rows > 0 {
			g.Go(func() error { return s.insertRetrying(ctx, t) })
		}
	}
	if err := g.Wait(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if len(b.out) > 0 {
		if err := cl.ProduceSync(wctx, b.out...).FirstErr(); err != nil {
			return fmt.Errorf("cannot produce the sink's dead letters (offsets not committed; records will be read again): %w", err)
		}
	}
	if len(b.offsets) == 0 {
		return nil
	}
	var cerr error
	cl.CommitOffsetsSync(wctx, b.offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		// The rows are in ClickHouse; a redelivery only writes duplicates
		// that the ReplacingMergeTree tables collapse.
		s.log.Warn("cannot commit sink offsets; the records will be written again", "err", cerr)
		return nil
	}
	s.m.commits.Inc()
	return nil
}

// revoke runs when partitions move away: write what was polled and commit
// it, so the next owner starts where this one stopped.
func (s *Sink) revoke(_ context.Context, cl *kgo.Client, _ map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.toWriter == nil {
		return
	}
	if err := s.handOff(cl, true); err != nil {
		s.log.Warn("cannot write batches before partitions move; their records will be written again", "err", err)
	}
}

// insertRetrying sends one table's batch until ClickHouse acknowledges it.
// While it fails, nothing else is fetched (the poll loop is here), so lag
// grows and memory stays bounded. Once ctx ends it keeps trying for
// ShutdownTimeout, then gives up without committing.
func (s *Sink) insertRetrying(ctx context.Context, t *table) error {
	tm := s.tm[t.name]
	backoff := s.cfg.MinBackoff
	var giveUp time.Time
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := s.insert(ctx, t)
		if err == nil {
			tm.secs.Observe(time.Since(start).Seconds())
			tm.batch.Observe(float64(t.rows))
			tm.rows.Add(float64(t.rows))
			if attempt > 1 {
				s.m.failing.Set(0)
				s.log.Info("ClickHouse accepts inserts again", "table", t.name, "attempts", attempt)
			}
			t.reset()
			return nil
		}
		tm.errors.Inc()
		s.m.failing.Set(1)
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("cannot insert batch into ClickHouse; retrying (fetching paused, lag grows)",
				"table", t.name, "rows", t.rows, "attempt", attempt, "backoff", backoff, "err", err)
		}
		if ctx.Err() != nil {
			if giveUp.IsZero() {
				giveUp = time.Now().Add(s.cfg.ShutdownTimeout)
			}
			if time.Now().After(giveUp) {
				return fmt.Errorf("cannot insert %d rows into %s before shutdown (offsets not committed; the records will be read again): %w", t.rows, t.name, err)
			}
		}
		timer := time.NewTimer(backoff)
		if giveUp.IsZero() {
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
			}
		} else {
			<-timer.C
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// insert sends one batch with its explicit column list (18.16 needs it).
func (s *Sink) insert(ctx context.Context, t *table) error {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.InsertTimeout)
	defer cancel()
	cols := t.columnNames()
	for i, c := range cols {
		cols[i] = "`" + c + "`"
	}
	b, err := s.conn.PrepareBatch(ictx, "INSERT INTO "+s.cfg.Database+"."+t.name+" ("+strings.Join(cols, ", ")+")")
	if err != nil {
		return fmt.Errorf("cannot prepare insert into %s: %w", t.name, err)
	}
	for i, c := range t.cols {
		if err := c.send(b, i); err != nil {
			_ = b.Abort()
			return err
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot send %d rows to %s: %w", t.rows, t.name, err)
	}
	return nil
}

// connect opens the ClickHouse connection and applies the DDL, retrying
// with backoff while the server is unreachable.
func (s *Sink) connect(ctx context.Context) error {
	opts, err := clickhouse.ParseDSN(s.cfg.DSN)
	if err != nil {
		return fmt.Errorf("cannot parse ClickHouse DSN %s: %w", RedactDSN(s.cfg.DSN), err)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > 5*time.Second {
		opts.DialTimeout = 5 * time.Second
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("cannot open ClickHouse %s: %w", RedactDSN(s.cfg.DSN), err)
	}
	s.conn = conn
	backoff := s.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		added, err := ApplyDDL(ctx, conn, s.cfg.Database)
		if len(added) > 0 {
			s.log.Warn("added columns that existing ClickHouse tables lacked (rows written before read the type's default)", "database", s.cfg.Database, "columns", added)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("cannot prepare ClickHouse tables; retrying", "dsn", RedactDSN(s.cfg.DSN), "attempt", attempt, "err", err)
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(2*backoff, s.cfg.MaxBackoff)
	}
}

// ApplyDDL creates the database and every table of schemas/clickhouse that
// is missing, then adds the columns an existing table lacks
// (AddMissingColumns) and returns those. It is idempotent.
func ApplyDDL(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	for _, stmt := range schemas.ClickHouseDDL(database) {
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := conn.Exec(qctx, stmt)
		cancel()
		if err != nil {
			head, _, _ := strings.Cut(stmt, "(")
			return nil, fmt.Errorf("cannot apply DDL %q: %w", strings.TrimSpace(head), err)
		}
	}
	return AddMissingColumns(ctx, conn, database)
}

// AddMissingColumns adds to the sink's tables the columns of
// schemas/clickhouse they lack and returns them as "table.column": a table
// created by an older build keeps its columns (CREATE TABLE IF NOT EXISTS
// leaves it alone), and the sink's inserts name every column of the DDL, so
// without this an upgrade that adds a record field would stop the sink.
// Each column goes after its predecessor in the DDL; rows written before
// read the type's default (0, ”, 1970-01-01). Columns are never dropped or
// retyped: a column the DDL no longer has stays, a changed type is left to
// the operator (docs/clickhouse.md).
func AddMissingColumns(ctx context.Context, conn driver.Conn, database string) ([]string, error) {
	tables := schemas.ClickHouseTables()
	var added []string
	for _, name := range slices.Sorted(maps.Keys(tables)) {
		have, err := tableColumns(ctx, conn, database, name)
		if err != nil {
			return added, err
		}
		cols := tables[name]
		for i, c := range cols {
			if have[c.Name] {
				continue
			}
			stmt := fmt.Sprintf("ALTER TABLE %s.%s ADD COLUMN `%s` %s", database, name, c.Name, c.Type)
			if i > 0 {
				stmt += fmt.Sprintf(" AFTER `%s`", cols[i-1].Name)
			}
			qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := conn.Exec(qctx, stmt)
			cancel()
			if err != nil {
				return added, fmt.Errorf("cannot add column %s.%s to an existing table: %w", name, c.Name, err)
			}
			added = append(added, name+"."+c.Name)
		}
	}
	return added, nil
}

// tableColumns returns the names of a table's columns.
func tableColumns(ctx context.Context, conn driver.Conn, database, table string) (map[string]bool, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rows, err := conn.Query(qctx, "SELECT name FROM system.columns WHERE database = ? AND table = ?", database, table)
	if err != nil {
		return nil, fmt.Errorf("cannot read the columns of %s.%s: %w", database, table, err)
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("cannot read the columns of %s.%s: %w", database, table, err)
		}
		have[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the columns of %s.%s: %w", database, table, err)
	}
	if len(have) == 0 {
		return nil, fmt.Errorf("cannot read the columns of %s.%s: the table has none (not created?)", database, table)
	}
	return have, nil
}

// Lag is the sink group's total lag over every topic it reads: records
// written to Kafka and not yet acknowledged by ClickHouse.
func (s *Sink) Lag(ctx context.Context, adm *kadm.Client) (int64, error) {
	by, err := s.LagByTopic(ctx, adm)
	var total int64
	for _, l := range by {
		total += l
	}
	return total, err
}

// LagByTopic is the sink group's lag per topic it reads.
func (s *Sink) LagByTopic(ctx context.Context, adm *kadm.Client) (map[string]int64, error) {
	lags, err := adm.Lag(ctx, s.cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("cannot read sink group lag: %w", err)
	}
	l, ok := lags[s.cfg.Group]
	if !ok {
		return nil, fmt.Errorf("cannot read sink group lag: group %s not described", s.cfg.Group)
	}
	if err := l.Error(); err != nil {
		return nil, fmt.Errorf("cannot read sink group lag: %w", err)
	}
	out := map[string]int64{}
	for _, t := range s.Topics() {
		for _, p := range l.Lag[t] {
			if p.Err != nil {
				return nil, fmt.Errorf("cannot read sink lag of %s/%d: %w", t, p.Partition, p.Err)
			}
			out[t] += p.Lag
		}
	}
	return out, nil
}

// Close releases the ClickHouse connection. It is idempotent.
func (s *Sink) Close() error {
	var err error
	s.closeOnce.Do(func() {
		if s.conn != nil {
			err = s.conn.Close()
		}
	})
	return err
}
