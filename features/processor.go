package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// Config configures the feature stage.
type Config struct {
	// Group is the consumer group of the stage. Default "driftline-features".
	// Its state changelog is the compacted topic driftline.state.<group>.
	Group string `yaml:"group"`
	// TransactionalID identifies this process instance's transactional
	// producer. Keep it stable across restarts of the same instance (a
	// StatefulSet pod name, a systemd instance name): a restarted instance
	// then fences its killed predecessor at once and aborts its open
	// transaction. With a new ID the predecessor's open transaction holds
	// back read_committed readers of the partitions it wrote (outputs and
	// the state restore) until TransactionTimeout aborts it. Two live
	// processes must never share one: the second fences the first.
	// Default <group>-<hostname>-<pid>.
	TransactionalID string `yaml:"transactional_id"`
	// TransactionTimeout is how long the broker lets a transaction of a
	// dead process stay open before aborting it. Default 10s.
	TransactionTimeout time.Duration `yaml:"transaction_timeout"`
	// SessionTimeout is the consumer group session timeout: how long a
	// killed member keeps its partitions before the group moves them.
	// Default 45s (the client's default).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// Spec is the model served. Default PurchasePropensity(). Its features
	// are names of the feature definitions.
	Spec Spec `yaml:"model"`
	// FeaturesFile is a YAML file of feature definitions (docs/windows.md)
	// computed by the window engine. Default: the embedded
	// features/window/purchase_propensity.yaml, the first model's 15.
	FeaturesFile string `yaml:"features_file"`
	// MaxKeys bounds the keys (users plus sessions) the window engine holds
	// per assigned partition: an event that needs a new key beyond it goes
	// to the DLQ with reason state_full (driftline_window_full_rejections_total).
	// Default 1,000,000.
	MaxKeys int `yaml:"max_keys"`
	// UserTTL and SessionTTL: the window engine drops a user or session
	// idle for longer (event time, against the watermark); its lifetime
	// features start again from empty if it comes back. Defaults 720h and
	// 2h; SessionTTL must be at least SessionGap.
	UserTTL    time.Duration `yaml:"user_ttl"`
	SessionTTL time.Duration `yaml:"session_ttl"`
	// AllowedLateness is subtracted from the event-time maximum to form the
	// watermark. Default 1m.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// SessionGap closes a session's state after this much event time
	// without events (once its labels are resolved). Default 30m.
	SessionGap time.Duration `yaml:"session_gap"`
	// MaxRecordBytes rejects larger records to the DLQ. Default 64 KiB.
	MaxRecordBytes int `yaml:"max_record_bytes"`
	// IdleTimeout: an input topic-partition that delivered nothing for this
	// much wall time stops holding the watermark back (Flink's
	// withIdleness). Until then, a partition's watermark waits for every
	// input topic, so a purchase still unread never loses its positive
	// label. Default 30s.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// FlushTimeout bounds ending a transaction (producing outputs and
	// changelog records, committing offsets), also at shutdown. Default 30s.
	FlushTimeout time.Duration `yaml:"flush_timeout"`
	// RestoreTimeout bounds reading a partition's changelog. Default 5m.
	RestoreTimeout time.Duration `yaml:"restore_timeout"`
	// FetchMaxBytes bounds what the stage fetches ahead of what it has
	// handled: the client buffers one fetch per broker, of at most this
	// many bytes as stored (compressed: JSON batches decompress to several
	// times this), a partition's share 1/32 of it. A producer flooding
	// the inputs then builds consumer lag on the broker, not memory in the
	// stage. Default 2 MiB (~60,000 storefront records compressed, more
	// than a transaction takes); 1 KiB to 1 GiB (the client's limit on one
	// response).
	FetchMaxBytes int32 `yaml:"fetch_max_bytes"`
	// MaxBatchRecords bounds the input records of one transaction (one
	// poll). Default 10,000.
	MaxBatchRecords int `yaml:"max_batch_records"`
	// MaxInputSkew aligns the input topics while a backlog is read (Flink's
	// watermark alignment): fetching an input topic-partition whose newest
	// event time runs more than this ahead of another input of the same
	// partition that still has unread records is paused until that one
	// catches up. Without it a flood read at different speeds per topic
	// holds the watermark back while the leading topic's pending labels
	// pile up in memory. A lagging input without backlog (a sparse
	// transactions topic) never pauses the others. Default 5m; negative
	// disables.
	MaxInputSkew time.Duration `yaml:"max_input_skew"`
	// RingSlack widens the rings of tumbling, hopping and session windows
	// beyond AllowedLateness (window.Config.RingSlack): the stage's
	// watermark is the minimum over its inputs, which alignment keeps within
	// MaxInputSkew of each other, so RingSlack = MaxInputSkew keeps a
	// backlog read from overflowing them (driftline_window_overflows_total).
	// Default 0. It is part of the engine's layout: after a change, the
	// changelog records of keys with such windows no longer restore (skipped
	// and logged; those keys start empty), so set it before the first start.
	RingSlack time.Duration `yaml:"ring_slack"`
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = consumers.DefaultFeaturesGroup
	}
	if c.TransactionalID == "" {
		host, _ := os.Hostname()
		c.TransactionalID = fmt.Sprintf("%s-%s-%d", c.Group, host, os.Getpid())
	}
	if c.TransactionTimeout == 0 {
		c.TransactionTimeout = 10 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 45 * time.Second
	}
	if c.Spec.Name == "" {
		c.Spec = PurchasePropensity()
	}
	if c.AllowedLateness == 0 {
		c.AllowedLateness = time.Minute
	}
	if c.SessionGap == 0 {
		c.SessionGap = 30 * time.Minute
	}
	if c.MaxKeys == 0 {
		c.MaxKeys = 1_000_000
	}
	if c.UserTTL == 0 {
		c.UserTTL = 720 * time.Hour
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = 2 * time.Hour
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 64 << 10
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
	if c.RestoreTimeout == 0 {
		c.RestoreTimeout = 5 * time.Minute
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = 2 << 20
	}
	if c.MaxBatchRecords == 0 {
		c.MaxBatchRecords = 10_000
	}
	if c.MaxInputSkew == 0 {
		c.MaxInputSkew = 5 * time.Minute
	}
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.AllowedLateness < 0 {
		return fmt.Errorf("features: allowed_lateness must be >= 0, got %s", c.AllowedLateness)
	}
	if c.RingSlack < 0 {
		return fmt.Errorf("features: ring_slack must be >= 0, got %s", c.RingSlack)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"session_gap", c.SessionGap}, {"idle_timeout", c.IdleTimeout}, {"flush_timeout", c.FlushTimeout},
		{"restore_timeout", c.RestoreTimeout},
	} {
		// Zero takes the default in setDefaults; a negative one would, say,
		// treat every input as idle and send purchases to the DLQ as late.
		if d.v <= 0 {
			return fmt.Errorf("features: %s must be > 0, got %s", d.name, d.v)
		}
	}
	if c.TransactionTimeout < time.Second {
		return fmt.Errorf("features: transaction_timeout must be >= 1s, got %s", c.TransactionTimeout)
	}
	if c.FetchMaxBytes < 1<<10 || c.FetchMaxBytes > 1<<30 || c.MaxBatchRecords < 1 {
		return fmt.Errorf("features: fetch_max_bytes must be 1KiB-1GiB and max_batch_records >= 1, got %d and %d", c.FetchMaxBytes, c.MaxBatchRecords)
	}
	if c.MaxKeys < 2 {
		return fmt.Errorf("features: max_keys must be >= 2 (a user and a session), got %d", c.MaxKeys)
	}
	if c.UserTTL <= 0 || c.SessionTTL <= 0 {
		return fmt.Errorf("features: user_ttl and session_ttl must be > 0, got %s and %s", c.UserTTL, c.SessionTTL)
	}
	if c.SessionTTL < c.SessionGap {
		return fmt.Errorf("features: session_ttl (%s) must be >= session_gap (%s): a session's features would expire while it is open", c.SessionTTL, c.SessionGap)
	}
	return c.Spec.Validate()
}

// definitions loads the feature definitions and checks that they hold
// every feature of the model.
func (c *Config) definitions() (*window.Definitions, error) {
	defs := window.PurchasePropensity()
	if c.FeaturesFile != "" {
		var err error
		if defs, err = window.Load(c.FeaturesFile); err != nil {
			return nil, err
		}
	}
	for _, f := range c.Spec.Features {
		if defs.Index(f) < 0 {
			src := "the embedded purchase_propensity.yaml"
			if c.FeaturesFile != "" {
				src = c.FeaturesFile
			}
			return nil, fmt.Errorf("model spec %s: feature %q is not defined in %s (defined: %v)", c.Spec.Name, f, src, defs.Names())
		}
	}
	return defs, nil
}

// Processor is the running feature stage.
type Processor struct {
	cfg    Config
	kafka  consumers.KafkaConfig
	feed   *consumers.ModelFeed
	log    *slog.Logger
	m      *metrics
	scorer *Scorer
	dec    schemas.Decoder

	parts  map[int32]*partState
	inputs map[string]int // input topic -> index of its clock in partState
	merge  mergeScratch   // reused by handleMerged every poll
	events [numInputs]*txnCounter
	// label counters, by outcome
	positives, negatives *txnCounter
	now                  func() time.Time
	engCfg               window.Config   // one engine per partition
	winM                 *window.Metrics // shared by the engines
	idx                  []int           // spec feature i -> definition index
	out                  []*kgo.Record
	outw                 outputWriter    // the batch's output records and their bytes
	win                  windowPublisher // closed windows -> driftline.windows (windows.go)
	vecRec               schemas.FeatureVector
	predRec              schemas.Prediction
	labelRec             schemas.Label
	event                schemas.Event
	vals                 []float64 // a vector of every definition

	warnedCold   bool
	warnedKeying bool

	// mu guards parts against the group's callbacks (which run only
	// between batches: the client blocks rebalances while a batch is
	// handled) and is held while a batch is handled.
	mu        sync.Mutex
	changelog changelogWriter
	rebalance bool // partitions were revoked or lost since the last batch
	// paused are the input topic-partitions whose fetching align paused.
	paused map[inputPartition]bool
}

// inputPartition is one partition of one input topic (index into the
// inputs).
type inputPartition struct {
	topic int
	part  int32
}

// New builds the stage. feed must be run by the caller.
func New(cfg Config, kafka consumers.KafkaConfig, feed *consumers.ModelFeed, log *slog.Logger, reg prometheus.Registerer) (*Processor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Processor{
		cfg:    cfg,
		kafka:  kafka,
		feed:   feed,
		log:    log.With("role", "features"),
		m:      newMetrics(reg),
		scorer: NewScorer(cfg.Spec),
		parts:  map[int32]*partState{},
		paused: map[inputPartition]bool{},
	}
	defs, err := cfg.definitions()
	if err != nil {
		return nil, err
	}
	p.engCfg = window.Config{Definitions: defs, AllowedLateness: cfg.AllowedLateness, UserTTL: cfg.UserTTL,
		SessionTTL: cfg.SessionTTL, MaxKeys: cfg.MaxKeys, CallerWatermark: true,
		RingSlack: cfg.RingSlack}
	eng, err := window.New(p.engCfg, p.log, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot create window engine: %w", err)
	}
	p.winM = window.NewMetrics(reg)
	// The engines' counters, like the stage's, count committed work only.
	p.winM.DeferCounters(func(c prometheus.Counter) prometheus.Counter { return p.m.tx.counter(c) })
	p.win = newWindowPublisher(kafka.Topics.Windows, defs, cfg.Spec.Name)
	p.vals = make([]float64, defs.Len())
	p.log.Debug("feature definitions loaded", "name", defs.Name, "features", defs.Len(), "file", cfg.FeaturesFile, "engine", eng.String())
	p.changelog.topic = consumers.ChangelogTopic(cfg.Group)
	p.dec.MaxBytes = cfg.MaxRecordBytes
	p.dec.Topics = schemas.InputTopics{Clickstream: kafka.Topics.Clickstream, Cart: kafka.Topics.Cart, Transactions: kafka.Topics.Transactions}
	for _, f := range cfg.Spec.Features {
		p.idx = append(p.idx, defs.Index(f))
	}
	p.inputs = map[string]int{}
	p.now = time.Now
	for i, t := range kafka.Topics.Inputs() {
		p.inputs[t] = i
		p.events[i] = p.m.events.WithLabelValues(t)
	}
	p.positives = p.m.labels.WithLabelValues(schemas.LabelReasonPurchase)
	p.negatives = p.m.labels.WithLabelValues(schemas.LabelReasonHorizon)
	p.m.modelInfo.WithLabelValues(cfg.Spec.Name).Set(0)
	feed.OnChampion(p.swap)
	return p, nil
}

// Scorer exposes the stage's scorer (the demo reads the version served).
func (p *Processor) Scorer() *Scorer { return p.scorer }

func (p *Processor) swap(v *schemas.ModelVersion) {
	if v.Model != p.cfg.Spec.Name {
		return
	}
	old := p.scorer.Version()
	if err := p.scorer.Swap(v); err != nil {
		p.log.Error("champion not served", "err", err)
		return
	}
	p.m.modelInfo.WithLabelValues(v.Model).Set(float64(v.Version))
	p.log.Info("champion swapped", "model", v.Model, "from_version", old, "to_version", v.Version)
}

// Run consumes the storefront topics until ctx ends, exactly once: each
// polled batch is one Kafka transaction holding its features, predictions,
// labels, dead letters, state changelog records and input offsets. A
// partition's state is restored from its changelog before its first input is
// handled (after an assignment, and after an aborted transaction rewound the
// inputs). Shutdown order: stop fetching, end the last transaction (bounded
// by FlushTimeout even when ctx is done), leave the group.
func (p *Processor) Run(ctx context.Context) error {
	select {
	case <-p.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	sess, err := kgo.NewGroupTransactSession(p.kafka.Opts(p.log,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.kafka.Topics.Inputs()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Co-partitioning: partition i of every input topic on one member,
		// so a user's clicks, carts and purchases meet in one state.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(p.revoke),
		kgo.OnPartitionsLost(p.revoke),
		kgo.SessionTimeout(p.cfg.SessionTimeout),
		kgo.FetchMaxWait(100*time.Millisecond),
		// Backpressure: the client buffers one fetch per broker, so these
		// bound the input held in memory; a flood waits on the broker.
		kgo.FetchMaxBytes(p.cfg.FetchMaxBytes),
		// A partition's share is small enough that one fetch serves every
		// partition of the three inputs (24 for the default 8): a
		// partition left out of fetches holds its watermark back.
		kgo.FetchMaxPartitionBytes(max(p.cfg.FetchMaxBytes/32, 16<<10)),
		// The client refuses a fetch limit above what it reads of one
		// response (100 MiB by default, 1 GiB at most): follow a larger
		// fetch_max_bytes (validated up to 1 GiB).
		kgo.BrokerMaxReadBytes(max(100<<20, p.cfg.FetchMaxBytes)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.TransactionalID(p.cfg.TransactionalID),
		kgo.TransactionTimeout(p.cfg.TransactionTimeout),
		kgo.RecordPartitioner(consumers.ChangelogPartitioner(p.changelog.topic)),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create features client: %w", err)
	}
	defer sess.Close()
	if err := p.checkCoPartitioned(ctx, sess.Client()); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting: a clean shutdown, not a failure
		}
		return err
	}
	if v := p.feed.Champion(p.cfg.Spec.Name); v != nil {
		p.swap(v) // the feed may have notified before New registered, or not at all
	}
	if p.scorer.Version() == 0 {
		p.coldStart(true)
	}
	p.log.Info("feature stage running exactly-once", "group", p.cfg.Group, "transactional_id", p.cfg.TransactionalID, "changelog", p.changelog.topic)
	touched := map[int32]bool{}
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if p.anyPaused() {
			pctx, cancel = context.WithTimeout(ctx, alignStale)
		}
		fetches := sess.PollRecords(pctx, p.cfg.MaxBatchRecords)
		cancel()
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				p.log.Warn("fetch failed", "topic", t, "partition", part, "err", err)
			}
		})
		done := ctx.Err() != nil
		if fetches.NumRecords() == 0 {
			p.align(sess.Client(), fetches) // a paused input whose laggard went quiet resumes
			sess.AllowRebalance()
			if done {
				return nil
			}
			continue
		}
		committed, err := p.transact(ctx, sess, fetches, touched)
		p.align(sess.Client(), fetches)
		sess.AllowRebalance()
		if err != nil {
			return err
		}
		if !committed && done {
			p.log.Warn("the last transaction before shutdown was aborted: its inputs will be handled again after a restart")
		}
		if done {
			return nil
		}
	}
}

// transact handles one polled batch in one transaction and reports whether
// it committed. When it did not, the inputs are rewound to the last
// committed offsets, so the state of every partition the batch touched is
// dropped: it is restored from the changelog, as committed with those
// offsets, before the inputs are handled again.
func (p *Processor) transact(ctx context.Context, sess *kgo.GroupTransactSession, fetches kgo.Fetches, touched map[int32]bool) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.FlushTimeout)
	defer cancel()
	if err := sess.Begin(); err != nil {
		return false, fmt.Errorf("cannot begin transaction: %w", err)
	}
	if p.rebalance {
		// The group rebalanced since the last transaction: the session
		// aborts the first transaction after a revoke whatever it holds,
		// so abort this one before doing any work (its inputs are
		// rewound and fetched again).
		p.rebalance = false
		if _, err := sess.End(wctx, kgo.TryAbort); err != nil {
			return false, fmt.Errorf("cannot abort transaction after a rebalance: %w", err)
		}
		p.m.txns.WithLabelValues("rebalance").Inc()
		clear(touched)
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) > 0 {
				touched[fp.Partition] = true
			}
		})
		p.realign(sess.Client(), touched)
		return false, nil
	}
	clear(touched)
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			touched[fp.Partition] = true
		}
	})
	// The restore has its own budget (RestoreTimeout, under ctx): a long
	// changelog must not eat the FlushTimeout that ending the transaction
	// needs, and a stop during the restore is a clean stop.
	if err := p.restoreMissing(ctx, touched, "assigned"); err != nil {
		actx, acancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.FlushTimeout)
		_, _ = sess.End(actx, kgo.TryAbort)
		acancel()
		if ctx.Err() != nil {
			return false, nil
		}
		return false, err
	}
	cancel()
	wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), p.cfg.FlushTimeout)
	defer cancel()
	handleStart := time.Now()
	p.m.tx.begin()
	p.handleMerged(fetches)
	p.out = p.flushChangelog(p.out)
	produceStart := time.Now()
	e := kgo.AbortingFirstErrPromise(sess.Client())
	for _, r := range p.out {
		sess.Produce(wctx, r, e.Promise())
	}
	// Send now: e.Err waits for every record's acknowledgement, and without
	// a flush the producer would first linger (10 ms by default) on each
	// partition's batch. That linger was most of a prediction's latency.
	if err := sess.Client().Flush(wctx); err != nil && ctx.Err() == nil {
		p.log.Debug("flush before ending the transaction failed", "err", err)
	}
	produceErr := e.Err()
	endStart := time.Now()
	committed, err := sess.End(wctx, kgo.TransactionEndTry(produceErr == nil))
	if p.log.Enabled(ctx, slog.LevelDebug) {
		p.log.Debug("transaction ended", "committed", committed, "inputs", fetches.NumRecords(), "records", len(p.out),
			"handle_seconds", produceStart.Sub(handleStart).Seconds(), "produce_seconds", endStart.Sub(produceStart).Seconds(),
			"end_seconds", time.Since(endStart).Seconds())
	}
	p.m.tx.end(committed)
	p.resetOutputs()
	if committed {
		p.m.txns.WithLabelValues("committed").Inc()
		return true, nil
	}
	p.m.txns.WithLabelValues("aborted").Inc()
	for part := range touched {
		p.drop(part)
	}
	p.realign(sess.Client(), touched)
	if err != nil {
		return false, fmt.Errorf("cannot end transaction (state of partitions %v dropped; restored from the changelog after a restart): %w", slices.Sorted(maps.Keys(touched)), err)
	}
	p.log.Warn("transaction aborted: inputs rewound to the last commit, state of the batch's partitions dropped and restored from the changelog before they are handled again",
		"partitions", slices.Sorted(maps.Keys(touched)), "produce_err", produceErr)
	return false, nil
}

// flushChangelog appends the changelog records of every partition's dirty
// keys to out.
func (p *Processor) flushChangelog(out []*kgo.Record) []*kgo.Record {
	n := p.changelog.n
	for part, ps := range p.parts {
		out = ps.flush(part, &p.changelog, out)
	}
	p.m.changelog.Add(float64(p.changelog.n - n))
	return out
}

// restoreMissing restores from the changelog the state of every partition
// in parts that has none in memory.
func (p *Processor) restoreMissing(ctx context.Context, parts map[int32]bool, reason string) error {
	var missing []int32
	for part := range parts {
		if p.parts[part] == nil {
			missing = append(missing, part)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	rctx, cancel := context.WithTimeout(ctx, p.cfg.RestoreTimeout)
	defer cancel()
	start := time.Now()
	states := map[int32]*restoring{}
	for _, part := range missing {
		states[part] = newRestoring()
	}
	var firstErr error
	st, err := consumers.ReadChangelog(rctx, p.kafka, p.log, p.changelog.topic, missing, func(r *kgo.Record) {
		if err := states[r.Partition].apply(r.Key, r.Value); err != nil && firstErr == nil {
			firstErr = err
		}
	})
	if err != nil {
		return fmt.Errorf("cannot restore feature state of partitions %v: %w", missing, err)
	}
	now := p.now()
	keys, bad := 0, 0
	for part, rs := range states {
		ps, err := rs.finish(now, p.engine())
		if err != nil && firstErr == nil {
			firstErr = err
		}
		p.watchWindows(part, ps) // after the restore: it must not publish
		p.parts[part] = ps
		ks := ps.eng.Stats().Keys
		keys += ps.sessions.len() + len(ps.queue) + ks[window.User] + ks[window.Session]
		bad += rs.bad
	}
	took := time.Since(start)
	p.m.restoreSeconds.Observe(took.Seconds())
	p.m.restoreRecords.Add(float64(st.Records))
	p.log.Info("state restored from changelog", "partitions", missing, "reason", reason, "records", st.Records, "bytes", st.Bytes,
		"keys", keys, "seconds", took.Seconds())
	if bad > 0 {
		p.log.Error("changelog records could not be restored and were skipped", "count", bad, "first_err", firstErr)
	}
	return nil
}

// checkCoPartitioned refuses to start when the input topics have different
// partition counts: a user's events would then meet in different states and
// purchases would never find their carts. It also creates the changelog
// when it is missing, with the inputs' partition count, and refuses a
// changelog partitioned otherwise (the state of input partition N lives in
// changelog partition N).
func (p *Processor) checkCoPartitioned(ctx context.Context, cl *kgo.Client) error {
	inputs := p.kafka.Topics.Inputs()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx, inputs...)
	if err != nil {
		return fmt.Errorf("cannot describe input topics: %w", err)
	}
	counts := make([]string, 0, len(inputs))
	n := -1
	same := true
	for _, t := range inputs {
		d, ok := td[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("cannot describe input topic %s: does it exist? (driftline run creates it unless --provision=false)", t)
		}
		if n >= 0 && len(d.Partitions) != n {
			same = false
		}
		n = len(d.Partitions)
		counts = append(counts, fmt.Sprintf("%s has %d", t, len(d.Partitions)))
	}
	if !same {
		return fmt.Errorf("cannot run the feature stage: input topics must have the same partition count (%s)", strings.Join(counts, ", "))
	}
	if err := consumers.Provision(ctx, adm, []consumers.TopicSpec{consumers.ChangelogSpec(p.cfg.Group, int32(n))}); err != nil {
		return fmt.Errorf("cannot create state changelog: %w", err)
	}
	cd, err := adm.ListTopics(ctx, p.changelog.topic)
	if err != nil {
		return fmt.Errorf("cannot describe state changelog %s: %w", p.changelog.topic, err)
	}
	if d := cd[p.changelog.topic]; d.Err != nil || len(d.Partitions) != n {
		return fmt.Errorf("cannot run the feature stage: state changelog %s must have the inputs' %d partitions, has %d (err %v)", p.changelog.topic, n, len(d.Partitions), d.Err)
	}
	return nil
}

// revoke drops the state of partitions that moved to another member (their
// last transaction committed it to the changelog, where the new owner reads
// it) or were lost.
func (p *Processor) revoke(_ context.Context, cl *kgo.Client, revoked map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rebalance = true
	for _, parts := range revoked {
		for _, part := range parts {
			p.drop(part)
		}
	}
	p.resumeOrphans(cl)
}

// drop forgets a partition's state (it is restored from the changelog if
// the partition is handled again) and takes its keys out of the gauges.
func (p *Processor) drop(part int32) {
	if ps := p.parts[part]; ps != nil {
		ps.eng.Release()
		delete(p.parts, part)
	}
}

// anyPaused reports whether align paused an input.
func (p *Processor) anyPaused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.paused) > 0
}

// alignStale is how long a lagging input's backlog holds others paused
// without delivering a record; while any input is paused, polls wait at
// most this long, so align runs again even when nothing arrives.
const alignStale = time.Second

// align pauses fetching the input topic-partitions whose newest event time
// runs more than MaxInputSkew ahead of another input of the same partition
// that has unread records (and is not paused itself), and resumes them once
// it caught up or has no backlog left. The input with the lowest event time
// among those with backlog is never paused, so reading always progresses.
// Records of a paused partition already buffered by the client are dropped
// by the client and fetched again on resume (its position does not move).
func (p *Processor) align(cl *kgo.Client, fetches kgo.Fetches) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.MaxInputSkew < 0 {
		return
	}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		ti, ok := p.inputs[fp.Topic]
		ps := p.parts[fp.Partition]
		if !ok || ps == nil || len(fp.Records) == 0 {
			return
		}
		ps.backlog[ti] = fp.HighWatermark > fp.Records[len(fp.Records)-1].Offset+1
	})
	skew := p.cfg.MaxInputSkew.Milliseconds()
	topics := p.kafka.Topics.Inputs()
	now := p.now()
	var pause, resume map[string][]int32
	for part, ps := range p.parts {
		for ti := range numInputs {
			ahead := false
			for tj := range numInputs {
				lag := &ps.clocks[tj]
				// A backlog that delivered nothing for alignStale is not
				// one: behind the last record of a transactional producer
				// sits its commit marker, which read_committed fetches
				// never return as a record, so the high watermark stays
				// one past the last record read.
				if tj != ti && ps.backlog[tj] && lag.maxTS > 0 && !p.paused[inputPartition{tj, part}] &&
					now.Sub(lag.lastRead) < alignStale &&
					ps.clocks[ti].maxTS-lag.maxTS > skew {
					ahead = true
				}
			}
			k := inputPartition{ti, part}
			switch {
			case ahead && !p.paused[k]:
				p.paused[k] = true
				pause = addPartition(pause, topics[ti], part)
			case !ahead && p.paused[k]:
				delete(p.paused, k)
				resume = addPartition(resume, topics[ti], part)
			}
		}
	}
	if pause != nil {
		cl.PauseFetchPartitions(pause)
	}
	if resume != nil {
		cl.ResumeFetchPartitions(resume)
	}
	p.resumeOrphans(cl)
}

// resumeOrphans resumes the paused input partitions whose state is gone
// (revoked, or dropped after an aborted transaction): a partition that comes
// back must be fetched from the start.
func (p *Processor) resumeOrphans(cl *kgo.Client) {
	var resume map[string][]int32
	topics := p.kafka.Topics.Inputs()
	for k := range p.paused {
		if p.parts[k.part] == nil {
			delete(p.paused, k)
			resume = addPartition(resume, topics[k.topic], k.part)
		}
	}
	if resume != nil {
		cl.ResumeFetchPartitions(resume)
	}
	p.m.pausedInputs.Set(float64(len(p.paused)))
}

func addPartition(m map[string][]int32, topic string, part int32) map[string][]int32 {
	if m == nil {
		m = map[string][]int32{}
	}
	m[topic] = append(m[topic], part)
	return m
}

func (p *Processor) coldStart(entering bool) {
	if entering && !p.warnedCold {
		p.warnedCold = true
		p.log.Warn("no champion model yet: feature vectors and labels flow, predictions wait for the first version (see driftline_features_unscored_total)", "model", p.cfg.Spec.Name)
	}
}

// handle decides everything one input record causes.
func (p *Processor) handle(r *kgo.Record) {
	ti, ok := p.inputs[r.Topic]
	if !ok {
		return // not subscribed; cannot happen
	}
	p.events[ti].Inc()
	e := &p.event
	if err := p.dec.Decode(r.Topic, r.Value, e); err != nil {
		field, reason := "record", err.Error()
		var ve *schemas.ValidationError
		if errors.As(err, &ve) {
			field, reason = ve.Field, ve.Error()
		}
		p.out = append(p.out, consumers.DeadLetter(p.kafka.Topics.DLQ, r, field, reason))
		p.m.dlq.WithLabelValues(field).Inc()
		return
	}
	if string(r.Key) != e.UserID {
		// Processed anyway (dropping it would lose data), but its user's
		// state may be split across partitions: say so once, count always.
		p.m.misrouted.Inc()
		if !p.warnedKeying {
			p.warnedKeying = true
			p.log.Warn("storefront record not keyed by its user_id: user features and labels of that user may be wrong (see driftline_features_misrouted_total)",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "key", string(r.Key), "user_id", e.UserID)
		}
	}
	now := p.now()
	ps := p.parts[r.Partition]
	if ps == nil {
		ps = newPartState(now, p.engine())
		p.watchWindows(r.Partition, ps)
		p.parts[r.Partition] = ps
	}
	s := ps.sessions.get(e.SessionID)
	if s == nil && ps.sessions.len() >= p.cfg.MaxKeys {
		// The label bookkeeping's sessions have the engine's budget too:
		// with definitions that keep no session state the engine's keys
		// would not bound them. Refused before anything moves.
		p.reject(r, e, ps, window.ErrFull)
		return
	}
	if s != nil && s.userID() != e.UserID {
		// Session state is keyed by session_id: merging another user's
		// events into it would mix two users' features and labels. Before
		// the watermark moves: a record refused here moves nothing.
		p.out = append(p.out, consumers.DeadLetter(p.kafka.Topics.DLQ, r, "session_id",
			fmt.Sprintf("session_id %q already belongs to user %q: a session_id names one session of one user", e.SessionID, s.userID())))
		p.m.dlq.WithLabelValues("session_id").Inc()
		return
	}
	// The watermark as it is with this event read (windows.go): windows it
	// closes close before the event lands in its ring.
	ps.eng.Advance(ps.watermarkWith(ti, e.TimeMillis, now, p.cfg.AllowedLateness.Milliseconds(), p.cfg.IdleTimeout))
	// The input clock records the event whether the engine takes it or
	// not (late, state_full): the engine's watermark already counts it,
	// and the stage's must not fall behind it.
	ps.observe(ti, e.TimeMillis, now)
	if err := ps.eng.Update(e); err != nil {
		p.reject(r, e, ps, err)
		return
	}
	s = ps.apply(e)
	if e.Type == schemas.Purchase {
		p.resolvePurchase(ps, s, e.TimeMillis)
	}
	if p.cfg.Spec.triggers(e.Type) {
		p.trigger(ps, s, e, r.Timestamp)
	}
	p.expire(ps, now)
}

// engine returns a fresh window engine for a partition. Its config was
// validated by New, so it cannot fail.
func (p *Processor) engine() *window.Engine {
	eng, err := window.New(p.engCfg, p.log, p.winM)
	if err != nil {
		panic("features: window engine config validated in New failed: " + err.Error())
	}
	return eng
}

// reject dead-letters an event the window engine did not apply: late (its
// windows and labels are already decided: applying it now would change
// history) or beyond the key budget (no value is ever computed from a
// silently evicted key). Kept, with the reason, never silently dropped.
func (p *Processor) reject(r *kgo.Record, e *schemas.Event, ps *partState, err error) {
	field, reason := "type", err.Error()
	switch {
	case errors.Is(err, window.ErrLate):
		field = "ts"
		reason = fmt.Sprintf("late: ts %s is before the partition's watermark %s (allowed lateness %s)",
			time.UnixMilli(e.TimeMillis).UTC().Format(time.RFC3339Nano), time.UnixMilli(ps.eng.Watermark()).UTC().Format(time.RFC3339Nano), p.cfg.AllowedLateness)
		p.m.late.Inc()
	case errors.Is(err, window.ErrFull):
		field = "state"
		reason = fmt.Sprintf("state_full: user %q or session %q would be a new key beyond the partition's budget (max_keys %d); keys come back into it as they expire",
			e.UserID, e.SessionID, p.cfg.MaxKeys)
		p.m.stateFull.Inc()
	}
	p.out = append(p.out, consumers.DeadLetter(p.kafka.Topics.DLQ, r, field, reason))
	if field != "ts" {
		p.m.dlq.WithLabelValues(field).Inc() // late records are counted by driftline_features_late_total alone, as before
	}
}

// trigger builds, scores and emits the vector of a trigger event and
// leaves it pending for its label.
func (p *Processor) trigger(ps *partState, s *session, e *schemas.Event, produced time.Time) {
	ps.eng.Vector(e, p.vals)
	// The strings of e point into the record; what outlives it is copied
	// into the partition's label arena.
	values := ps.scratch[:0]
	for _, ci := range p.idx {
		values = append(values, p.vals[ci])
	}
	ps.scratch = values
	pl := ps.newPendingLabel(s, e.EventID, e.TimeMillis, values)
	evTime := time.UnixMilli(e.TimeMillis).UTC()
	// The output records are fields of p, encoded at once into the batch's
	// buffer: nothing escapes per event.
	vec := &p.vecRec
	*vec = schemas.FeatureVector{
		Model: p.cfg.Spec.Name, EventID: ps.eventID(pl), EventType: e.Type, EventTime: evTime,
		UserID: s.userID(), SessionID: s.id(), Segments: *ps.segs(s), Values: values,
	}
	p.emit(p.kafka.Topics.Features, s.userID(), evTime, vec)
	p.m.vectors.Inc()

	if score, version, ok := p.scorer.Score(values); ok {
		pred := &p.predRec
		*pred = schemas.Prediction{
			Model: vec.Model, Version: version, Score: score, EventID: vec.EventID, EventType: vec.EventType,
			EventTime: evTime, UserID: vec.UserID, SessionID: vec.SessionID, Segments: vec.Segments,
			ScoredAt: time.Now().UTC(),
		}
		p.emit(p.kafka.Topics.Predictions, s.userID(), evTime, pred)
		*pred = schemas.Prediction{}
		p.m.predictions.Inc()
		p.m.latency.Observe(time.Since(produced).Seconds())
		pl.version, pl.score = int32(version), score
		if p.warnedCold {
			p.warnedCold = false
			p.log.Info("champion available: scoring resumed", "model", vec.Model, "version", version)
		}
	} else {
		p.m.unscored.Inc()
		p.coldStart(true)
	}
	*vec = schemas.FeatureVector{}

	h := p.cfg.Spec.Horizon.Milliseconds()
	if at, ok := ps.purchasedWithin(s, e.TimeMillis, e.TimeMillis+h); ok {
		p.label(ps, pl, schemas.LabelReasonPurchase, at)
		ps.release(pl) // never queued nor written
		return
	}
	ps.addPending(s, pl)
	pl.flags |= flagQueued
	ps.queuePush(pl)
	ps.dirty.pendingLabel(pl)
}

// resolvePurchase labels positive every pending vector of the session whose
// horizon covers the purchase.
func (p *Processor) resolvePurchase(ps *partState, s *session, ms int64) {
	h := p.cfg.Spec.Horizon.Milliseconds()
	for at := &s.pending; *at != 0; {
		pl := ps.labelSlab.at(*at - 1)
		if t := pl.atMs; ms >= t && ms <= t+h {
			p.label(ps, pl, schemas.LabelReasonPurchase, ms)
			ps.dirty.pendingLabel(pl)
			*at, pl.next = pl.next, 0
			continue
		}
		at = &pl.next
	}
}

// expire labels negative the vectors whose horizon the watermark has
// passed, and drops closed sessions.
func (p *Processor) expire(ps *partState, now time.Time) {
	ps.eng.Advance(ps.watermark(now, p.cfg.AllowedLateness.Milliseconds(), p.cfg.IdleTimeout))
	wm := max(0, ps.eng.Watermark()) // never goes back, unlike the input clocks' minimum
	h := p.cfg.Spec.Horizon.Milliseconds()
	for len(ps.queue) > 0 && ps.queueFirst().atMs+h < wm {
		pl := ps.queuePop()
		pl.flags &^= flagQueued
		if pl.resolved {
			ps.release(pl) // labelled positive already
			continue
		}
		p.label(ps, pl, schemas.LabelReasonHorizon, wm)
		ps.dirty.pendingLabel(pl)
		ps.removePending(ps.sessions.at(pl.sess), pl)
	}
	// Sweep closed sessions once per event-time minute.
	if wm-ps.swept < 60_000 {
		return
	}
	ps.swept = wm
	p.m.watermark.Set(float64(p.lowestWatermark()) / 1000)
	gap := p.cfg.SessionGap.Milliseconds()
	for id, s := range ps.sessions.all() {
		if s.pending == 0 && s.lastMillis+gap+h < wm {
			ps.sessions.del(id)
			s.flags |= flagDeleted
			ps.dirty.session(s)
		}
	}
}

// lowestWatermark is the smallest swept watermark over assigned partitions.
func (p *Processor) lowestWatermark() int64 {
	low := int64(0)
	for _, ps := range p.parts {
		if low == 0 || (ps.swept > 0 && ps.swept < low) {
			low = ps.swept
		}
	}
	return low
}

func (p *Processor) label(ps *partState, pl *pendingLabel, reason string, atMs int64) {
	pl.resolved = true
	s := ps.sessions.at(pl.sess)
	l := &p.labelRec
	*l = schemas.Label{
		Model: p.cfg.Spec.Name, Version: int(pl.version), Score: pl.score, EventID: ps.eventID(pl),
		EventTime: time.UnixMilli(pl.atMs).UTC(), UserID: s.userID(), SessionID: s.id(), Segments: *ps.segs(s),
		Values: ps.values(pl), Reason: reason, LabelTime: time.UnixMilli(atMs).UTC(),
	}
	counter := p.negatives
	if reason == schemas.LabelReasonPurchase {
		l.Label = 1
		counter = p.positives
	}
	p.emit(p.kafka.Topics.Labels, s.userID(), l.EventTime, l)
	*l = schemas.Label{} // holds no pointer into a pending label that may be reused
	counter.Inc()
}

// emit queues a JSON record; it is produced and acknowledged before the
// input offsets are committed. v must point to one of p's reused records
// (a pointer to a local would escape: an allocation per event); key and
// value are copied into the batch's buffer.
func (p *Processor) emit(topic, key string, ts time.Time, v any) {
	if err := p.outw.json(topic, key, ts, v); err != nil {
		// Our own records always encode; a failure is a bug worth a loud log.
		p.log.Error("cannot encode output record", "topic", topic, "err", err)
		return
	}
	p.out = append(p.out, &p.outw.recs[len(p.outw.recs)-1])
}

// Process does for one record what Run does, without Kafka: decode,
// validate, state, vector, score, labels. Outputs are queued; take them with
// TakeOutputs. It exists for benchmarks and tools that drive the stage
// directly; it is not safe to call while Run is running.
func (p *Processor) Process(r *kgo.Record) { p.handle(r) }

// TakeOutputs returns the records queued since the last call, followed by
// the changelog records of the state they changed (one per changed key, as
// Run writes at the end of a batch), and forgets them.
func (p *Processor) TakeOutputs() []*kgo.Record {
	out := p.flushChangelog(p.out)
	p.changelog.detach()
	p.outw.detach()
	p.out = nil
	return out
}

// FlushOutputs hands fn the records queued since the last call, followed by
// the changelog records of the state they changed, as TakeOutputs does, but
// the records and their bytes are valid only until fn returns: their
// buffers are reused for the next batch, as Run reuses them once a
// transaction has ended. Nothing is allocated in steady state.
func (p *Processor) FlushOutputs(fn func([]*kgo.Record)) {
	p.out = p.flushChangelog(p.out)
	fn(p.out)
	p.resetOutputs()
}

// resetOutputs forgets the batch's records and makes their buffers
// reusable: only once they are produced or aborted.
func (p *Processor) resetOutputs() {
	clear(p.out)
	p.out = p.out[:0]
	p.changelog.reset()
	p.outw.reset()
}

// Serve installs a model version directly, as the registry feed would.
func (p *Processor) Serve(v *schemas.ModelVersion) error { return p.scorer.Swap(v) }

// mergeScratch is reused by every poll: the record runs of one poll and
// their partition numbers.
type mergeScratch struct {
	runs [][]*kgo.Record
	part []int32
	idx  []int
}

// handleMerged handles a poll partition number by partition number, and
// within one, the co-partitioned input topics merged in record-timestamp
// order (each topic-partition keeps its offset order; equal timestamps in
// input order: clickstream, cart, transactions; handledBefore). Handling a poll
// topic-partition by topic-partition, as EachRecord does, featurised a
// cart event before the same partition's earlier clickstream events held
// by the same poll: during a backlog 5-10% of the demo's vectors undercounted
// session_events and session_product_views, and the monitor saw drift that
// was not in the storefront (measured with the ClickHouse query in
// docs/monitors.md). Allocates nothing once the scratch has grown.
func (p *Processor) handleMerged(fetches kgo.Fetches) {
	s := &p.merge
	s.runs, s.part = s.runs[:0], s.part[:0]
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			s.runs = append(s.runs, fp.Records)
			s.part = append(s.part, fp.Partition)
		}
	})
	for start := 0; start < len(s.runs); {
		end := start + 1 // gather the runs of partition s.part[start]
		for i := end; i < len(s.runs); i++ {
			if s.part[i] == s.part[start] {
				s.runs[end], s.runs[i] = s.runs[i], s.runs[end]
				s.part[end], s.part[i] = s.part[i], s.part[end]
				end++
			}
		}
		g := s.runs[start:end]
		s.idx = s.idx[:0]
		for range g {
			s.idx = append(s.idx, 0)
		}
		for {
			best := -1
			for i, rs := range g {
				if s.idx[i] < len(rs) && (best < 0 || p.handledBefore(rs[s.idx[i]], g[best][s.idx[best]])) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			p.handle(g[best][s.idx[best]])
			s.idx[best]++
		}
		start = end
	}
	clear(s.runs)
}

// handledBefore orders two records of one partition's different input
// topics: by record timestamp, and at equal timestamps by input (clickstream,
// cart, transactions), so the order a partition is handled in depends on its
// records only, never on the order a fetch response lists the topics in. A
// stream read in polls that each take whole producer transactions is then
// handled the same way however it was cut into polls, restarts included
// (cmd/driftline's TestKillNineExactlyOnce).
func (p *Processor) handledBefore(a, b *kgo.Record) bool {
	if !a.Timestamp.Equal(b.Timestamp) {
		return a.Timestamp.Before(b.Timestamp)
	}
	return p.inputs[a.Topic] < p.inputs[b.Topic]
}

// realign makes every input topic of the partitions an aborted transaction
// read start again from its committed offset, together. Ending a
// transaction with an abort, the session rewinds only the topic-partitions
// the batch read records from; another input topic of the same partition
// keeps the fetch buffered or in flight, which reads past that point. Its
// newer records would then be handled before the rewound topic's older
// ones: a cart event before the clicks that preceded it (seen in the
// scale-out test after a rebalance). Seeking the partition's other topics
// to their committed offsets too (with no leader epoch, so the client
// treats it as a new position and drops what it holds for them) makes the
// next fetches read all three from where the last commit left them.
// Called after End, before AllowRebalance: no rebalance runs meanwhile.
func (p *Processor) realign(cl *kgo.Client, parts map[int32]bool) {
	if len(parts) == 0 {
		return
	}
	committed := cl.CommittedOffsets()
	seek := map[string]map[int32]kgo.EpochOffset{}
	for _, topic := range p.kafka.Topics.Inputs() {
		for part := range parts {
			eo, ok := committed[topic][part]
			if !ok {
				continue // never committed: it starts from the reset offset, nothing read past it
			}
			if seek[topic] == nil {
				seek[topic] = map[int32]kgo.EpochOffset{}
			}
			seek[topic][part] = kgo.EpochOffset{Epoch: -1, Offset: eo.Offset}
		}
	}
	cl.SetOffsets(seek)
}
