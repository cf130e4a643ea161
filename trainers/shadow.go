package trainers

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/accuracy"
	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/schemas"
)

// ShadowConfig is what follows the gate.
type ShadowConfig struct {
	// Enabled puts a challenger that passed the gate on the shadow alias
	// instead of the champion's: the Shadow component scores it beside the
	// champion and promotes it only when its realised accuracy holds up.
	// (A bootstrap version has no champion to shadow and is promoted
	// directly.) Default false.
	Enabled bool `yaml:"enabled"`
	// MinLabels is how many labels of vectors the champion served after the
	// candidate's training window are needed to decide. Default 1000.
	MinLabels int `yaml:"min_labels"`
	// Margin: the candidate is promoted when its ROC AUC on those labels is
	// at least the champion's minus Margin, else the shadow is cleared.
	// Default 0.
	Margin float64 `yaml:"margin"`
	// NoPredictions stops the shadow predictions (marked "shadow": true)
	// written to the predictions topic; the decision does not need them.
	NoPredictions bool `yaml:"no_predictions"`
	// ProbationLabels is how many labels of vectors a new champion served
	// are compared with the previous champion's scores on the same vectors;
	// -1 disables probation. Default 1000.
	ProbationLabels int `yaml:"probation_labels"`
	// ProbationMargin: the champion is rolled back, in one alias move, when
	// its realised ROC AUC is below the previous champion's by more than
	// this. Default 0.02.
	ProbationMargin float64 `yaml:"probation_margin"`
	// LeaseGroup is the consumer group whose lease (the registry topic's
	// one partition) decides which trainer replica's Shadow component
	// scores and decides; the others stand by. Default
	// "driftline-trainer-decisions".
	LeaseGroup string `yaml:"lease_group"`
}

func (c *ShadowConfig) setDefaults() {
	if c.MinLabels == 0 {
		c.MinLabels = 1000
	}
	if c.ProbationLabels == 0 {
		c.ProbationLabels = 1000
	}
	if c.ProbationMargin == 0 {
		c.ProbationMargin = 0.02
	}
	if c.LeaseGroup == "" {
		c.LeaseGroup = "driftline-trainer-decisions"
	}
}

// Validate reports a config that cannot work.
func (c *ShadowConfig) Validate() error {
	switch {
	case c.MinLabels < 100:
		return fmt.Errorf("trainer: shadow min_labels must be >= 100, got %d", c.MinLabels)
	case c.ProbationLabels != -1 && c.ProbationLabels < 100:
		return fmt.Errorf("trainer: shadow probation_labels must be >= 100 or -1, got %d", c.ProbationLabels)
	case c.Margin < 0 || c.ProbationMargin < 0:
		return fmt.Errorf("trainer: shadow margins must be >= 0, got %g and %g", c.Margin, c.ProbationMargin)
	}
	return nil
}

// Active reports whether a Shadow component has anything to do.
func (c ShadowConfig) Active() bool { return c.Enabled || c.ProbationLabels > 0 }

// Shadow judges models on realised accuracy. While a shadow candidate
// exists (the shadow alias points above the champion), it scores every
// feature vector with it and publishes the score to the predictions topic
// marked shadow, and compares its ROC AUC with the champion's on the labels
// of vectors served after the candidate's training window: the champion's
// served scores against the candidate's scores of the same served vectors.
// It then promotes the candidate (a champion move) or clears the shadow
// (a shadow move to 0). After a promotion by the gate or by the shadow, a
// probation compares the new champion's served scores with the previous
// champion's scores on the same labelled vectors and rolls back (one
// champion move) when the new one is worse by more than the margin. Every
// decision is an alias move on the registry topic with its evidence.
//
// Decisions are taken by one component however many trainer replicas run
// one: the replica that holds the decision lease (a consumer group on the
// registry topic, ShadowConfig.LeaseGroup) scores and decides; the others
// read and drop the records until the lease comes to them. Its evidence is
// in memory; after a restart or a lease change it is collected again from
// the labels that arrive.
type Shadow struct {
	cfg   ShadowConfig
	model string
	kafka consumers.KafkaConfig
	feed  *consumers.ModelFeed
	reg   *Registry
	log   *slog.Logger
	m     *shadowMetrics

	lease     *lease
	cand      judge // shadow candidate against the champion
	probation judge // new champion against the previous one
	probDone  int   // champion version whose probation is decided
	complete  completeness
}

// judge collects paired scores of two models on the same labelled vectors.
type judge struct {
	version, against int
	model            *logreg.Model // the model scored here (the other's scores are served)
	a, b, y          []float64
	t                []time.Time // event time of each label's vector
}

func (j *judge) reset(version, against int, m *logreg.Model) {
	*j = judge{version: version, against: against, model: m}
}

func (j *judge) add(a, b, y float64, t time.Time) {
	j.a, j.b, j.y, j.t = append(j.a, a), append(j.b, b), append(j.y, y), append(j.t, t)
}

// complete returns the pairs whose outcome window is closed (event time up
// to complete). The newest labels are mostly positives — a purchase labels
// a vector within minutes, a negative waits for the horizon — so judging on
// the first labels to arrive judges on a sample that one class dominates.
func (j *judge) complete(complete time.Time) (a, b, y []float64) {
	for i, t := range j.t {
		if !t.After(complete) {
			a, b, y = append(a, j.a[i]), append(b, j.b[i]), append(y, j.y[i])
		}
	}
	return a, b, y
}

// completeness is, per labels partition, the event time of the newest
// horizon (negative) label: up to the minimum over partitions every
// outcome is known, as the trainers' buffer and the demo judge it too.
type completeness map[int32]time.Time

func (c completeness) observe(partition int32, l *schemas.Label) {
	if l.Reason == schemas.LabelReasonHorizon && l.EventTime.After(c[partition]) {
		c[partition] = l.EventTime
	}
}

func (c completeness) upTo() time.Time {
	var m time.Time
	for _, t := range c {
		if m.IsZero() || t.Before(m) {
			m = t
		}
	}
	return m
}

type shadowMetrics struct {
	predictions prometheus.Counter
	decisions   *prometheus.CounterVec
}

func newShadowMetrics(reg prometheus.Registerer) *shadowMetrics {
	m := &shadowMetrics{
		predictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_trainer_shadow_predictions_total", Help: "Predictions of a shadow candidate written to the predictions topic.",
		}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_trainer_decisions_total", Help: "Decisions taken on realised accuracy, by decision.",
		}, []string{"decision"}),
	}
	for _, d := range []string{schemas.DecisionShadowPromoted, schemas.DecisionShadowRejected, schemas.DecisionRolledBack, "probation_passed"} {
		m.decisions.WithLabelValues(d)
	}
	reg.MustRegister(m.predictions, m.decisions)
	return m
}

// NewShadow builds the component for cfg.Model with cfg.Shadow. feed must be
// run by the caller; pub writes the registry.
func NewShadow(cfg Config, kafka consumers.KafkaConfig, feed *consumers.ModelFeed, pub message.Publisher, log *slog.Logger, reg prometheus.Registerer) (*Shadow, error) {
	cfg.setDefaults()
	if err := cfg.Shadow.Validate(); err != nil {
		return nil, err
	}
	log = log.With("role", "shadow")
	return &Shadow{
		cfg: cfg.Shadow, model: cfg.Model, kafka: kafka, feed: feed,
		reg:      NewRegistry(feed, pub, kafka.Topics.Models),
		log:      log,
		complete: completeness{},
		m:        newShadowMetrics(reg),
		lease:    &lease{kafka: kafka, group: cfg.Shadow.LeaseGroup, log: log},
	}, nil
}

// Run consumes the features and labels topics from their ends until ctx
// ends; it returns at once when shadow and probation are both off.
func (s *Shadow) Run(ctx context.Context) error {
	if !s.cfg.Active() {
		return nil
	}
	select {
	case <-s.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	cl, err := kgo.NewClient(s.kafka.Opts(s.log,
		kgo.ConsumeTopics(s.kafka.Topics.Features, s.kafka.Topics.Labels),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create shadow client: %w", err)
	}
	defer cl.Close()
	leaseDone := make(chan error, 1)
	go func() { leaseDone <- s.lease.run(ctx) }()
	defer func() { <-leaseDone }()
	gen := int64(0)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			s.log.Warn("shadow fetch failed", "topic", t, "partition", p, "err", err)
		})
		if !s.lease.Held() {
			continue // another replica decides
		}
		if g := s.lease.gen.Load(); g != gen {
			// Newly acquired: evidence starts afresh, as after a restart.
			gen = g
			s.cand.reset(0, 0, nil)
			s.probation.reset(0, 0, nil)
			s.probDone = 0
		}
		champ, cand := s.feed.Champion(s.model), s.candidate()
		fetches.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case s.kafka.Topics.Features:
				if cand != nil && !s.cfg.NoPredictions {
					s.predict(ctx, cl, r, cand)
				}
			case s.kafka.Topics.Labels:
				var l schemas.Label
				if err := json.Unmarshal(r.Value, &l); err != nil || l.Model != s.model {
					return
				}
				s.complete.observe(r.Partition, &l)
				if champ == nil || l.Version != champ.Version {
					return
				}
				if cand != nil {
					s.judgeShadow(champ, cand, l)
				}
				s.judgeProbation(champ, l)
				// A decision moved an alias: take the registry's new state
				// for the rest of the batch.
				champ, cand = s.feed.Champion(s.model), s.candidate()
			}
		})
	}
}

// candidate is the shadow version while it is newer than the champion.
func (s *Shadow) candidate() *schemas.ModelVersion {
	if !s.cfg.Enabled {
		return nil
	}
	c, champ := s.feed.Alias(s.model, schemas.AliasShadow), s.feed.Champion(s.model)
	if c == nil || champ == nil || c.Version <= champ.Version {
		return nil
	}
	return c
}

func (s *Shadow) predict(ctx context.Context, cl *kgo.Client, r *kgo.Record, cand *schemas.ModelVersion) {
	var fv schemas.FeatureVector
	if err := json.Unmarshal(r.Value, &fv); err != nil || fv.Model != s.model || len(fv.Values) != len(cand.Features) {
		return
	}
	m, err := logreg.ModelFromVersion(cand)
	if err != nil {
		return
	}
	p := schemas.Prediction{
		Model: s.model, Version: cand.Version, Score: m.Predict(fv.Values), EventID: fv.EventID, EventType: fv.EventType,
		EventTime: fv.EventTime, UserID: fv.UserID, SessionID: fv.SessionID, Segments: fv.Segments,
		ScoredAt: time.Now().UTC(), Shadow: true,
	}
	b, err := json.Marshal(p)
	if err != nil {
		return
	}
	cl.Produce(ctx, &kgo.Record{Topic: s.kafka.Topics.Predictions, Key: r.Key, Value: b, Timestamp: fv.EventTime}, func(_ *kgo.Record, err error) {
		if err != nil && ctx.Err() == nil {
			s.log.Warn("cannot publish shadow prediction", "err", err)
		}
	})
	s.m.predictions.Inc()
}

// judgeShadow adds a label the champion served to the candidate's evidence
// and decides once there is enough.
func (s *Shadow) judgeShadow(champ, cand *schemas.ModelVersion, l schemas.Label) {
	j := &s.cand
	if j.version != cand.Version || j.against != champ.Version {
		m, err := logreg.ModelFromVersion(cand)
		if err != nil {
			s.log.Error("cannot load shadow candidate", "version", cand.Version, "err", err)
			return
		}
		j.reset(cand.Version, champ.Version, m)
	}
	// Only vectors served after the candidate's training window: its
	// holdout-free future.
	if !l.EventTime.After(cand.Training.To) || len(l.Values) != len(cand.Features) {
		return
	}
	j.add(j.model.Predict(l.Values), l.Score, float64(l.Label), l.EventTime)
	if len(j.y) < s.cfg.MinLabels {
		return
	}
	ca, cb, cy := j.complete(s.complete.upTo())
	if len(cy) < s.cfg.MinLabels {
		return
	}
	aucCand, aucChamp := accuracy.AUC(ca, cy), accuracy.AUC(cb, cy)
	if math.IsNaN(aucCand) || math.IsNaN(aucChamp) {
		return // one class so far: wait for the other
	}
	ev := map[string]float64{
		"labels": float64(len(cy)), "shadow_version": float64(cand.Version), "champion_version": float64(champ.Version),
		"shadow_auc": aucCand, "champion_auc": aucChamp, "shadow_log_loss": accuracy.LogLoss(ca, cy),
		"champion_log_loss": accuracy.LogLoss(cb, cy), "margin": s.cfg.Margin,
	}
	reason := fmt.Sprintf("shadow v%d realised AUC %.4f vs champion v%d %.4f over %d complete labels (margin %.4f)",
		cand.Version, aucCand, champ.Version, aucChamp, len(cy), s.cfg.Margin)
	var err error
	if aucCand >= aucChamp-s.cfg.Margin {
		_, err = s.reg.MoveAlias(s.model, schemas.AliasChampion, cand.Version, schemas.DecisionShadowPromoted, reason, ev)
		s.decided(schemas.DecisionShadowPromoted, reason, err)
	} else {
		_, err = s.reg.MoveAlias(s.model, schemas.AliasShadow, 0, schemas.DecisionShadowRejected, reason, ev)
		s.decided(schemas.DecisionShadowRejected, reason, err)
	}
	if err == nil {
		// The alias move reaches the feed asynchronously: forget the
		// candidate now so it is not decided twice.
		j.reset(0, 0, nil)
		s.waitFor(func() bool { return s.candidate() == nil })
	}
}

// judgeProbation adds a label the champion served to its probation
// evidence, if the champion is on probation, and decides once there is
// enough.
func (s *Shadow) judgeProbation(champ *schemas.ModelVersion, l schemas.Label) {
	if s.cfg.ProbationLabels <= 0 || s.probDone == champ.Version {
		return
	}
	j := &s.probation
	if j.version != champ.Version {
		// On probation: a champion whose latest move was a promotion (by
		// the gate or the shadow) from a previous champion.
		hist := s.feed.AliasHistory(s.model, schemas.AliasChampion)
		if len(hist) == 0 {
			return
		}
		last := hist[len(hist)-1]
		prev := s.feed.Version(s.model, last.Previous)
		if last.Version != champ.Version || (last.Decision != schemas.DecisionGated && last.Decision != schemas.DecisionShadowPromoted) || prev == nil {
			s.probDone = champ.Version
			return
		}
		m, err := logreg.ModelFromVersion(prev)
		if err != nil || len(prev.Features) != len(champ.Features) {
			s.log.Error("cannot load previous champion for probation", "version", last.Previous, "err", err)
			s.probDone = champ.Version
			return
		}
		j.reset(champ.Version, prev.Version, m)
	}
	if len(l.Values) != len(champ.Features) {
		return
	}
	j.add(l.Score, j.model.Predict(l.Values), float64(l.Label), l.EventTime)
	if len(j.y) < s.cfg.ProbationLabels {
		return
	}
	ca, cb, cy := j.complete(s.complete.upTo())
	if len(cy) < s.cfg.ProbationLabels {
		return
	}
	aucNew, aucPrev := accuracy.AUC(ca, cy), accuracy.AUC(cb, cy)
	if math.IsNaN(aucNew) || math.IsNaN(aucPrev) {
		return
	}
	ev := map[string]float64{
		"labels": float64(len(cy)), "champion_version": float64(champ.Version), "previous_version": float64(j.against),
		"champion_auc": aucNew, "previous_auc": aucPrev, "champion_log_loss": accuracy.LogLoss(ca, cy),
		"previous_log_loss": accuracy.LogLoss(cb, cy), "margin": s.cfg.ProbationMargin,
	}
	reason := fmt.Sprintf("probation of v%d: realised AUC %.4f vs previous champion v%d %.4f on the same %d complete labels (margin %.4f)",
		champ.Version, aucNew, j.against, aucPrev, len(cy), s.cfg.ProbationMargin)
	s.probDone = champ.Version
	if aucNew >= aucPrev-s.cfg.ProbationMargin {
		s.decided("probation_passed", reason, nil)
		return
	}
	_, err := s.reg.MoveAlias(s.model, schemas.AliasChampion, j.against, schemas.DecisionRolledBack, reason, ev)
	s.decided(schemas.DecisionRolledBack, reason, err)
	if err == nil {
		// The version rolled back to is not put on probation again.
		s.probDone = j.against
		s.waitFor(func() bool {
			c := s.feed.Champion(s.model)
			return c != nil && c.Version == j.against
		})
	}
}

func (s *Shadow) decided(decision, reason string, err error) {
	if err != nil {
		s.log.Error("cannot record decision; will decide again", "decision", decision, "err", err)
		return
	}
	s.m.decisions.WithLabelValues(decision).Inc()
	s.log.Info("decision", "model", s.model, "decision", decision, "evidence", reason)
}

// waitFor polls the feed (up to 10 s) until a move this component wrote is
// read back, so the next label is judged against the registry's new state.
func (s *Shadow) waitFor(cond func() bool) {
	deadline := time.Now().Add(10 * time.Second)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}
