package features

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// Config configures the feature stage.
type Config struct {
	// Group is the consumer group of the stage. Default "driftline-features".
	Group string `yaml:"group"`
	// Spec is the model served. Default PurchasePropensity().
	Spec Spec `yaml:"model"`
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
	// FlushTimeout bounds producing outputs and committing offsets, also at
	// shutdown. Default 30s.
	FlushTimeout time.Duration `yaml:"flush_timeout"`
	// CommitInterval is the most time between offset commits while
	// running (outputs are always acknowledged first). Default 100ms.
	CommitInterval time.Duration `yaml:"commit_interval"`
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "driftline-features"
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
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = 64 << 10
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.FlushTimeout == 0 {
		c.FlushTimeout = 30 * time.Second
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = 100 * time.Millisecond
	}
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.AllowedLateness < 0 {
		return fmt.Errorf("features: allowed_lateness must be >= 0, got %s", c.AllowedLateness)
	}
	return c.Spec.Validate()
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
	events [numInputs]prometheus.Counter
	// label counters, by outcome
	positives, negatives prometheus.Counter
	now                  func() time.Time
	idx                  []int // spec feature i -> catalog index
	out                  []*kgo.Record
	event                schemas.Event
	vals                 [numCatalog]float64

	warnedCold   bool
	warnedKeying bool
	committed    time.Time // last offset commit
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
	}
	p.dec.MaxBytes = cfg.MaxRecordBytes
	p.dec.Topics = schemas.InputTopics{Clickstream: kafka.Topics.Clickstream, Cart: kafka.Topics.Cart, Transactions: kafka.Topics.Transactions}
	for _, f := range cfg.Spec.Features {
		p.idx = append(p.idx, catalogIndex(f))
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

// Run consumes the storefront topics until ctx ends. Shutdown order: stop
// fetching, flush produced records, commit offsets, leave the group.
func (p *Processor) Run(ctx context.Context) error {
	select {
	case <-p.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	cl, err := kgo.NewClient(p.kafka.Opts(p.log,
		kgo.ConsumerGroup(p.cfg.Group),
		kgo.ConsumeTopics(p.kafka.Topics.Inputs()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Co-partitioning: partition i of every input topic on one member,
		// so a user's clicks, carts and purchases meet in one state.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(p.revoke),
		kgo.OnPartitionsLost(p.dropPartitions),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create features client: %w", err)
	}
	defer cl.Close()
	if err := p.checkCoPartitioned(ctx, cl); err != nil {
		return err
	}
	if v := p.feed.Champion(p.cfg.Spec.Name); v != nil {
		p.swap(v) // the feed may have notified before New registered, or not at all
	}
	if p.scorer.Version() == 0 {
		p.coldStart(true)
	}
	for {
		fetches := cl.PollRecords(ctx, 10000)
		fetches.EachError(func(t string, part int32, err error) {
			if !errors.Is(err, context.Canceled) {
				p.log.Warn("fetch failed", "topic", t, "partition", part, "err", err)
			}
		})
		// Records returned are handled even when shutdown has begun: their
		// offsets are already queued for the commit below.
		fetches.EachRecord(p.handle)
		done := ctx.Err() != nil
		err := p.flushAndCommit(ctx, cl, done)
		cl.AllowRebalance()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// flushAndCommit produces every queued output and only then commits the
// input offsets: at most every CommitInterval, and always when force is set
// (shutdown) and when partitions are revoked (see revoke), so the commit
// round trip stays off most poll cycles. It runs to completion (bounded by
// FlushTimeout) even when ctx is done, so a SIGTERM never commits an input
// whose outputs were not acknowledged; if producing fails, nothing is
// committed and the inputs are read again after a restart.
func (p *Processor) flushAndCommit(ctx context.Context, cl *kgo.Client, force bool) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.FlushTimeout)
	defer cancel()
	if len(p.out) > 0 {
		results := cl.ProduceSync(wctx, p.out...)
		clear(p.out)
		p.out = p.out[:0]
		if err := results.FirstErr(); err != nil {
			return fmt.Errorf("cannot produce feature stage outputs (input offsets not committed; they will be read again): %w", err)
		}
	}
	if !force && time.Since(p.committed) < p.cfg.CommitInterval {
		return nil
	}
	if err := cl.CommitUncommittedOffsets(wctx); err != nil {
		return fmt.Errorf("cannot commit input offsets: %w", err)
	}
	p.committed = time.Now()
	return nil
}

// checkCoPartitioned refuses to start when the input topics have different
// partition counts: a user's events would then meet in different states and
// purchases would never find their carts.
func (p *Processor) checkCoPartitioned(ctx context.Context, cl *kgo.Client) error {
	inputs := p.kafka.Topics.Inputs()
	td, err := kadm.NewClient(cl).ListTopics(ctx, inputs...)
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
	return nil
}

// revoke runs inside AllowRebalance, after the cycle's outputs were
// acknowledged: commit what was processed before the partitions move, then
// drop their state.
func (p *Processor) revoke(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		p.log.Warn("cannot commit offsets of revoked partitions; their tail will be processed again", "err", err)
	}
	p.committed = time.Now()
	p.dropPartitions(ctx, cl, revoked)
}

func (p *Processor) dropPartitions(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	for _, parts := range lost {
		for _, part := range parts {
			delete(p.parts, part)
		}
	}
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
		ps = newPartState(now)
		p.parts[r.Partition] = ps
	}
	if wm := ps.watermark(now, p.cfg.AllowedLateness.Milliseconds(), p.cfg.IdleTimeout); e.TimeMillis < wm {
		// Its windows and labels are already decided: applying it now
		// would change history. Kept, with the reason, not applied.
		reason := fmt.Sprintf("late: ts %s is before the partition's watermark %s (allowed lateness %s)",
			time.UnixMilli(e.TimeMillis).UTC().Format(time.RFC3339Nano), time.UnixMilli(wm).UTC().Format(time.RFC3339Nano), p.cfg.AllowedLateness)
		p.out = append(p.out, consumers.DeadLetter(p.kafka.Topics.DLQ, r, "ts", reason))
		p.m.late.Inc()
		return
	}
	ps.observe(ti, e.TimeMillis, now)
	s := ps.apply(e)
	if e.Type == schemas.Purchase {
		p.resolvePurchase(s, e.TimeMillis)
	}
	if p.cfg.Spec.triggers(e.Type) {
		p.trigger(ps, s, e, r.Timestamp)
	}
	p.expire(ps, now)
}

// trigger builds, scores and emits the vector of a trigger event and
// leaves it pending for its label.
func (p *Processor) trigger(ps *partState, s *session, e *schemas.Event, produced time.Time) {
	ps.compute(e, s, &p.vals)
	values := make([]float64, len(p.idx))
	for i, ci := range p.idx {
		values[i] = p.vals[ci]
	}
	evTime := time.UnixMilli(e.TimeMillis).UTC()
	// The strings of e point into the record; what outlives it is copied.
	pl := &pendingLabel{sess: s, eventID: strings.Clone(e.EventID), values: values, atMs: e.TimeMillis}
	key := []byte(s.userID)
	vec := schemas.FeatureVector{
		Model: p.cfg.Spec.Name, EventID: pl.eventID, EventType: e.Type, EventTime: evTime,
		UserID: s.userID, SessionID: s.id, Segments: *s.segments, Values: values,
	}
	p.emit(p.kafka.Topics.Features, key, evTime, &vec)
	p.m.vectors.Inc()

	if score, version, ok := p.scorer.Score(values); ok {
		pred := schemas.Prediction{
			Model: vec.Model, Version: version, Score: score, EventID: vec.EventID, EventType: vec.EventType,
			EventTime: evTime, UserID: vec.UserID, SessionID: vec.SessionID, Segments: *s.segments,
			ScoredAt: time.Now().UTC(),
		}
		p.emit(p.kafka.Topics.Predictions, key, evTime, &pred)
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

	h := p.cfg.Spec.Horizon.Milliseconds()
	if at, ok := s.purchasedWithin(e.TimeMillis, e.TimeMillis+h); ok {
		p.label(pl, schemas.LabelReasonPurchase, at)
		return
	}
	s.pending = append(s.pending, pl)
	heap.Push(&ps.queue, pl)
}

// resolvePurchase labels positive every pending vector of the session whose
// horizon covers the purchase.
func (p *Processor) resolvePurchase(s *session, ms int64) {
	h := p.cfg.Spec.Horizon.Milliseconds()
	kept := s.pending[:0]
	for _, pl := range s.pending {
		if t := pl.atMs; ms >= t && ms <= t+h {
			p.label(pl, schemas.LabelReasonPurchase, ms)
			continue
		}
		kept = append(kept, pl)
	}
	clear(s.pending[len(kept):])
	s.pending = kept
}

// expire labels negative the vectors whose horizon the watermark has
// passed, and drops closed sessions.
func (p *Processor) expire(ps *partState, now time.Time) {
	wm := ps.watermark(now, p.cfg.AllowedLateness.Milliseconds(), p.cfg.IdleTimeout)
	h := p.cfg.Spec.Horizon.Milliseconds()
	for len(ps.queue) > 0 && ps.queue[0].atMs+h < wm {
		pl := heap.Pop(&ps.queue).(*pendingLabel)
		if pl.resolved {
			continue // labelled positive already
		}
		p.label(pl, schemas.LabelReasonHorizon, wm)
		s := pl.sess
		if i := slices.Index(s.pending, pl); i >= 0 {
			s.pending = slices.Delete(s.pending, i, i+1)
		}
	}
	// Sweep closed sessions once per event-time minute.
	if wm-ps.swept < 60_000 {
		return
	}
	ps.swept = wm
	p.m.watermark.Set(float64(p.lowestWatermark()) / 1000)
	gap := p.cfg.SessionGap.Milliseconds()
	for id, s := range ps.sessions {
		if len(s.pending) == 0 && s.lastMillis+gap+h < wm {
			delete(ps.sessions, id)
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

func (p *Processor) label(pl *pendingLabel, reason string, atMs int64) {
	pl.resolved = true
	s := pl.sess
	l := schemas.Label{
		Model: p.cfg.Spec.Name, Version: int(pl.version), Score: pl.score, EventID: pl.eventID,
		EventTime: time.UnixMilli(pl.atMs).UTC(), UserID: s.userID, SessionID: s.id, Segments: *s.segments,
		Values: pl.values, Reason: reason, LabelTime: time.UnixMilli(atMs).UTC(),
	}
	counter := p.negatives
	if reason == schemas.LabelReasonPurchase {
		l.Label = 1
		counter = p.positives
	}
	p.emit(p.kafka.Topics.Labels, []byte(s.userID), l.EventTime, &l)
	counter.Inc()
}

// emit queues a JSON record; it is produced and acknowledged before the
// input offsets are committed.
func (p *Processor) emit(topic string, key []byte, ts time.Time, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own records always encode; a failure is a bug worth a loud log.
		p.log.Error("cannot encode output record", "topic", topic, "err", err)
		return
	}
	p.out = append(p.out, &kgo.Record{Topic: topic, Key: append([]byte(nil), key...), Value: b, Timestamp: ts})
}

// Process does for one record what Run does, without Kafka: decode,
// validate, state, vector, score, labels. Outputs are queued; take them with
// TakeOutputs. It exists for benchmarks and tools that drive the stage
// directly; it is not safe to call while Run is running.
func (p *Processor) Process(r *kgo.Record) { p.handle(r) }

// TakeOutputs returns the records queued since the last call and forgets
// them.
func (p *Processor) TakeOutputs() []*kgo.Record {
	out := p.out
	p.out = nil
	return out
}

// Serve installs a model version directly, as the registry feed would.
func (p *Processor) Serve(v *schemas.ModelVersion) error { return p.scorer.Swap(v) }
