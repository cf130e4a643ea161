package features

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
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
	inputs map[string]prometheus.Counter // events counter per input topic, looked up once
	idx    []int                         // spec feature i -> catalog index
	out    []*kgo.Record
	event  schemas.Event
	vals   [numCatalog]float64

	warnedCold bool
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
	p.inputs = map[string]prometheus.Counter{}
	for _, t := range kafka.Topics.Inputs() {
		p.inputs[t] = p.m.events.WithLabelValues(t)
	}
	for _, r := range []string{schemas.LabelReasonPurchase, schemas.LabelReasonHorizon} {
		p.m.labels.WithLabelValues(r)
	}
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
		kgo.OnPartitionsRevoked(p.dropPartitions),
		kgo.OnPartitionsLost(p.dropPartitions),
		kgo.ProducerLinger(time.Millisecond),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create features client: %w", err)
	}
	defer cl.Close()
	if p.scorer.Version() == 0 {
		p.coldStart(true)
	}
	for {
		fetches := cl.PollRecords(ctx, 10000)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return p.finish(cl)
		}
		fetches.EachError(func(t string, part int32, err error) {
			p.log.Warn("fetch failed", "topic", t, "partition", part, "err", err)
		})
		fetches.EachRecord(p.handle)
		if err := p.flushAndCommit(ctx, cl); err != nil {
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return p.finish(cl)
			}
			return err
		}
		cl.AllowRebalance()
	}
}

// finish flushes and commits what was processed before shutdown, with a
// fresh deadline since the run context is already done.
func (p *Processor) finish(cl *kgo.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.flushAndCommit(ctx, cl)
}

func (p *Processor) flushAndCommit(ctx context.Context, cl *kgo.Client) error {
	if len(p.out) > 0 {
		results := cl.ProduceSync(ctx, p.out...)
		clear(p.out)
		p.out = p.out[:0]
		if err := results.FirstErr(); err != nil {
			return fmt.Errorf("cannot produce feature stage outputs: %w", err)
		}
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("cannot commit input offsets: %w", err)
	}
	return nil
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
	if c := p.inputs[r.Topic]; c != nil {
		c.Inc()
	}
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
	ps := p.parts[r.Partition]
	if ps == nil {
		ps = newPartState()
		p.parts[r.Partition] = ps
	}
	ps.observe(r.Topic, e.TimeMillis)
	s := ps.apply(e)
	if e.Type == schemas.Purchase {
		p.resolvePurchase(s, e.TimeMillis)
	}
	if p.cfg.Spec.triggers(e.Type) {
		p.trigger(r, ps, s, e)
	}
	p.expire(ps)
}

// trigger builds, scores and emits the vector of a trigger event and
// leaves it pending for its label.
func (p *Processor) trigger(r *kgo.Record, ps *partState, s *session, e *schemas.Event) {
	ps.compute(e, s, &p.vals)
	values := make([]float64, len(p.idx))
	for i, ci := range p.idx {
		values[i] = p.vals[ci]
	}
	evTime := time.UnixMilli(e.TimeMillis).UTC()
	vec := schemas.FeatureVector{
		Model: p.cfg.Spec.Name, EventID: e.EventID, EventType: e.Type, EventTime: evTime,
		UserID: e.UserID, SessionID: e.SessionID, Segments: s.segments, Values: values,
	}
	p.emit(p.kafka.Topics.Features, r.Key, evTime, &vec)
	p.m.vectors.Inc()

	pl := &pendingLabel{sess: s, label: schemas.Label{
		Model: vec.Model, EventID: vec.EventID, EventTime: evTime,
		UserID: vec.UserID, SessionID: vec.SessionID, Segments: s.segments, Values: values,
	}}
	// The strings of e point into the record; the pending label outlives it.
	pl.label.EventID = string(append([]byte(nil), vec.EventID...))
	pl.label.UserID = s.userID
	pl.label.SessionID = string(append([]byte(nil), vec.SessionID...))

	if score, version, ok := p.scorer.Score(values); ok {
		pred := schemas.Prediction{
			Model: vec.Model, Version: version, Score: score, EventID: vec.EventID, EventType: vec.EventType,
			EventTime: evTime, UserID: vec.UserID, SessionID: vec.SessionID, Segments: s.segments,
			ScoredAt: time.Now().UTC(),
		}
		p.emit(p.kafka.Topics.Predictions, r.Key, evTime, &pred)
		p.m.predictions.Inc()
		p.m.latency.Observe(time.Since(r.Timestamp).Seconds())
		pl.label.Version, pl.label.Score = version, score
		if p.warnedCold {
			p.warnedCold = false
			p.log.Info("champion available: scoring resumed", "model", vec.Model, "version", version)
		}
	} else {
		p.m.unscored.Inc()
		p.coldStart(true)
	}

	h := p.cfg.Spec.Horizon.Milliseconds()
	if s.purchaseMillis >= e.TimeMillis && s.purchaseMillis <= e.TimeMillis+h {
		p.label(pl, schemas.LabelReasonPurchase, s.purchaseMillis)
		return
	}
	s.pending = append(s.pending, pl)
	ps.queue = append(ps.queue, pl)
}

// resolvePurchase labels positive every pending vector of the session whose
// horizon covers the purchase.
func (p *Processor) resolvePurchase(s *session, ms int64) {
	h := p.cfg.Spec.Horizon.Milliseconds()
	kept := s.pending[:0]
	for _, pl := range s.pending {
		t := pl.label.EventTime.UnixMilli()
		if ms >= t && ms <= t+h {
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
func (p *Processor) expire(ps *partState) {
	wm := ps.watermark(p.cfg.AllowedLateness.Milliseconds())
	h := p.cfg.Spec.Horizon.Milliseconds()
	n := 0
	for _, pl := range ps.queue {
		if !pl.resolved && pl.label.EventTime.UnixMilli()+h >= wm {
			break
		}
		if !pl.resolved {
			p.label(pl, schemas.LabelReasonHorizon, wm)
			s := pl.sess
			for i, q := range s.pending {
				if q == pl {
					s.pending = append(s.pending[:i], s.pending[i+1:]...)
					break
				}
			}
		}
		n++
	}
	if n > 0 {
		clear(ps.queue[:n])
		ps.queue = ps.queue[n:]
	}
	// Sweep closed sessions once per event-time minute.
	if wm-ps.swept < 60_000 {
		return
	}
	ps.swept = wm
	p.m.watermark.Set(float64(wm) / 1000)
	gap := p.cfg.SessionGap.Milliseconds()
	for id, s := range ps.sessions {
		if len(s.pending) == 0 && s.lastMillis+gap+h < wm {
			delete(ps.sessions, id)
		}
	}
}

func (p *Processor) label(pl *pendingLabel, reason string, atMs int64) {
	pl.resolved = true
	pl.label.Reason = reason
	pl.label.LabelTime = time.UnixMilli(atMs).UTC()
	if reason == schemas.LabelReasonPurchase {
		pl.label.Label = 1
	}
	p.emit(p.kafka.Topics.Labels, []byte(pl.label.UserID), pl.label.EventTime, &pl.label)
	p.m.labels.WithLabelValues(reason).Inc()
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
