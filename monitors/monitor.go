package monitors

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/accuracy"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// Config configures the monitor role.
type Config struct {
	// Group is the consumer group. Default "driftline-monitor".
	Group string `yaml:"group"`
	// Model is the model watched. Default "purchase_propensity".
	Model string `yaml:"model"`
	// Window is how many of the latest feature vectors form the current
	// distribution compared with the reference. Default 2000.
	Window int `yaml:"window"`
	// EvaluateEvery vectors (or labels) the statistics are recomputed.
	// Default 250.
	EvaluateEvery int `yaml:"evaluate_every"`
	// PSIThreshold: a feature drifts when its PSI exceeds it. Default 0.2
	// (the conventional "significant shift" level).
	PSIThreshold float64 `yaml:"psi_threshold"`
	// Consecutive evaluations a breach must hold before it fires. Default 3.
	Consecutive int `yaml:"consecutive"`
	// AccuracyWindow is how many of the champion's latest labels the
	// rolling AUC and log loss cover. Default 1000.
	AccuracyWindow int `yaml:"accuracy_window"`
	// MinLabels before accuracy is judged. Default 500.
	MinLabels int `yaml:"min_labels"`
	// AUCDrop: accuracy breaches when the rolling AUC falls this far below
	// the AUC the version had on its holdout at training time. Default 0.08.
	AUCDrop float64 `yaml:"auc_drop"`
	// Cooldown in event time after a retrain request during which the same
	// champion raises no other. A new champion ends it. Default 2h.
	Cooldown time.Duration `yaml:"cooldown"`
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "driftline-monitor"
	}
	if c.Model == "" {
		c.Model = "purchase_propensity"
	}
	if c.Window == 0 {
		c.Window = 2000
	}
	if c.EvaluateEvery == 0 {
		c.EvaluateEvery = 250
	}
	if c.PSIThreshold == 0 {
		c.PSIThreshold = 0.2
	}
	if c.Consecutive == 0 {
		c.Consecutive = 3
	}
	if c.AccuracyWindow == 0 {
		c.AccuracyWindow = 1000
	}
	if c.MinLabels == 0 {
		c.MinLabels = 500
	}
	if c.AUCDrop == 0 {
		c.AUCDrop = 0.08
	}
	if c.Cooldown == 0 {
		c.Cooldown = 2 * time.Hour
	}
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case c.Window < 100:
		return fmt.Errorf("monitor: window must be >= 100 vectors, got %d", c.Window)
	case c.EvaluateEvery < 1 || c.EvaluateEvery > c.Window:
		return fmt.Errorf("monitor: evaluate_every must be 1..window, got %d", c.EvaluateEvery)
	case c.Consecutive < 1:
		return fmt.Errorf("monitor: consecutive must be >= 1, got %d", c.Consecutive)
	case c.MinLabels > c.AccuracyWindow:
		return fmt.Errorf("monitor: min_labels (%d) must not exceed accuracy_window (%d)", c.MinLabels, c.AccuracyWindow)
	}
	return nil
}

// Monitor is the running monitor role.
type Monitor struct {
	cfg   Config
	kafka consumers.KafkaConfig
	feed  *consumers.ModelFeed
	pub   message.Publisher
	log   *slog.Logger
	m     *metrics

	// Everything below is owned by Run's goroutine, except pendingSwap.
	champ    *schemas.ModelVersion
	drift    *driftWindow // the champion's features against its reference
	scores   *driftWindow // its scores against the reference score profile
	acc      *accuracyWindow
	lastDrop time.Time // event time of the latest retrain request
	score    [1]float64

	// next is the champion the registry feed announced last; Run installs
	// it between polls. Latest wins: the feed's goroutine never waits.
	next atomic.Pointer[schemas.ModelVersion]
}

// New builds the monitor. feed must be run by the caller; pub carries
// alerts and retrain requests.
func New(cfg Config, kafka consumers.KafkaConfig, feed *consumers.ModelFeed, pub message.Publisher, log *slog.Logger, reg prometheus.Registerer) (*Monitor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mo := &Monitor{
		cfg: cfg, kafka: kafka, feed: feed, pub: pub,
		log: log.With("role", "monitor"),
		m:   newMetrics(reg),
	}
	feed.OnChampion(func(v *schemas.ModelVersion) {
		if v.Model == cfg.Model {
			mo.next.Store(v)
		}
	})
	return mo, nil
}

// Run consumes vectors and labels until ctx ends.
func (mo *Monitor) Run(ctx context.Context) error {
	select {
	case <-mo.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	if v := mo.feed.Champion(mo.cfg.Model); v != nil {
		mo.install(v)
	}
	cl, err := kgo.NewClient(mo.kafka.Opts(mo.log,
		kgo.ConsumerGroup(mo.cfg.Group),
		kgo.ConsumeTopics(mo.kafka.Topics.Features, mo.kafka.Topics.Predictions, mo.kafka.Topics.Labels),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create monitor client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollRecords(ctx, 5000)
		if ctx.Err() != nil {
			return nil
		}
		if v := mo.next.Swap(nil); v != nil {
			mo.install(v)
		}
		fetches.EachError(func(t string, p int32, err error) {
			mo.log.Warn("fetch failed", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			if err := mo.handle(r); err != nil {
				mo.log.Error("record skipped", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			}
		})
	}
}

// install makes v the version monitored: a new reference, a fresh window.
func (mo *Monitor) install(v *schemas.ModelVersion) {
	if mo.champ != nil && mo.champ.Version == v.Version {
		return
	}
	mo.champ = v
	mo.drift = nil
	if err := checkReference(v); err != nil {
		mo.log.Error("feature drift is not monitored for this champion", "model", v.Model, "version", v.Version, "err", err)
	} else {
		mo.drift = newDriftWindow(v.Reference, mo.cfg.Window)
	}
	mo.scores = nil
	if err := profile.Validate(&v.Reference.Score); err != nil || len(v.Reference.Score.Fractions) < 2 {
		mo.log.Error("prediction drift is not monitored for this champion: no usable reference score profile", "model", v.Model, "version", v.Version, "err", err)
	} else {
		mo.scores = newDriftWindow(schemas.Profile{Features: []schemas.FeatureProfile{v.Reference.Score}}, mo.cfg.Window)
	}
	mo.acc = newAccuracyWindow(mo.cfg.AccuracyWindow)
	mo.lastDrop = time.Time{}
	mo.m.version.Set(float64(v.Version))
	mo.log.Info("monitoring champion", "model", v.Model, "version", v.Version, "holdout_auc", round(v.Metrics.AUC))
}

// checkReference reports a reference profile the drift window cannot use;
// the registry is replayed at every start, so a bad one must not panic.
func checkReference(v *schemas.ModelVersion) error {
	if len(v.Features) == 0 || len(v.Reference.Features) != len(v.Features) {
		return fmt.Errorf("reference profile has %d features, the version %d", len(v.Reference.Features), len(v.Features))
	}
	for i := range v.Reference.Features {
		f := &v.Reference.Features[i]
		if err := profile.Validate(f); err != nil {
			return fmt.Errorf("reference profile of %s: %w", f.Name, err)
		}
		if len(f.Fractions) > 256 {
			return fmt.Errorf("reference profile of %s has %d bins, at most 256 fit the window", f.Name, len(f.Fractions))
		}
	}
	return nil
}

func (mo *Monitor) handle(r *kgo.Record) error {
	if mo.champ == nil {
		return nil // nothing to compare with until a champion exists
	}
	switch r.Topic {
	case mo.kafka.Topics.Features:
		var v schemas.FeatureVector
		if err := json.Unmarshal(r.Value, &v); err != nil {
			return fmt.Errorf("cannot decode feature vector: %w", err)
		}
		if v.Model != mo.cfg.Model {
			return nil
		}
		if mo.drift == nil {
			return nil
		}
		if err := mo.drift.add(v.Values); err != nil {
			return err
		}
		if mo.drift.ready() && mo.drift.added%mo.cfg.EvaluateEvery == 0 {
			mo.evaluateDrift(mo.drift, schemas.AlertDrift, v.EventTime)
		}
	case mo.kafka.Topics.Predictions:
		var p schemas.Prediction
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return fmt.Errorf("cannot decode prediction: %w", err)
		}
		if p.Model != mo.cfg.Model || p.Version != mo.champ.Version || mo.scores == nil {
			return nil
		}
		mo.score[0] = p.Score
		if err := mo.scores.add(mo.score[:]); err != nil {
			return err
		}
		if mo.scores.ready() && mo.scores.added%mo.cfg.EvaluateEvery == 0 {
			mo.evaluateDrift(mo.scores, schemas.AlertPredictionDrift, p.EventTime)
		}
	case mo.kafka.Topics.Labels:
		var l schemas.Label
		if err := json.Unmarshal(r.Value, &l); err != nil {
			return fmt.Errorf("cannot decode label: %w", err)
		}
		if l.Model != mo.cfg.Model || l.Version != mo.champ.Version {
			return nil
		}
		mo.acc.add(l.Score, l.Label)
		if mo.acc.n >= mo.cfg.MinLabels && mo.acc.added%mo.cfg.EvaluateEvery == 0 {
			mo.evaluateAccuracy(l.EventTime)
		}
	}
	return nil
}

// evaluateDrift compares a window with its reference: each column's PSI,
// and, when the breach holds, an alert per drifted column of the given kind
// and one retrain request.
func (mo *Monitor) evaluateDrift(w *driftWindow, kind string, at time.Time) {
	psi := w.psi()
	var breached []int
	for i, v := range psi {
		mo.m.psi.WithLabelValues(w.ref.Features[i].Name).Set(v)
		if v > mo.cfg.PSIThreshold {
			breached = append(breached, i)
		}
	}
	if !w.observe(len(breached) > 0, at, mo.cfg.Consecutive, mo.cfg.Cooldown) {
		return
	}
	var ids []string
	for _, i := range breached {
		a := mo.alert(kind, w.ref.Features[i].Name, "psi", psi[i], mo.cfg.PSIThreshold,
			schemas.Window{From: w.oldest(), To: at}, w.n, at)
		ids = append(ids, a.ID)
	}
	mo.requestRetrain(kind, ids, w.since, at)
}

func (mo *Monitor) evaluateAccuracy(at time.Time) {
	auc, ll := mo.acc.metrics()
	mo.m.auc.Set(auc)
	mo.m.logLoss.Set(ll)
	floor := mo.champ.Metrics.AUC - mo.cfg.AUCDrop
	if !mo.acc.observe(!math.IsNaN(auc) && auc < floor, at, mo.cfg.Consecutive, mo.cfg.Cooldown) {
		return
	}
	a := mo.alert(schemas.AlertAccuracy, "", "roc_auc", auc, floor, schemas.Window{From: mo.acc.since, To: at}, mo.acc.n, at)
	mo.requestRetrain("accuracy", []string{a.ID}, mo.acc.since, at)
}

func (mo *Monitor) alert(kind, feature, stat string, value, threshold float64, w schemas.Window, samples int, at time.Time) schemas.Alert {
	a := schemas.Alert{
		ID:   fmt.Sprintf("%s/v%d/%s/%s/%s", mo.champ.Model, mo.champ.Version, kind, strings.TrimPrefix(feature+"/", "/")+stat, at.UTC().Format(time.RFC3339)),
		Kind: kind, Severity: "warning", Model: mo.champ.Model, Version: mo.champ.Version,
		Feature: feature, Statistic: stat, Value: round(value), Threshold: threshold,
		Window: w, Samples: samples, EventTime: at, FiredAt: time.Now().UTC(),
	}
	if err := mo.publish(mo.kafka.Topics.Alerts, a.Model, a); err != nil {
		mo.log.Error("cannot publish alert", "id", a.ID, "err", err)
	}
	mo.m.alerts.WithLabelValues(kind).Inc()
	mo.log.Warn("alert", "id", a.ID, "value", a.Value, "threshold", threshold)
	return a
}

// requestRetrain publishes one retrain request per incident: not again for
// this champion until the cooldown (event time) has passed.
func (mo *Monitor) requestRetrain(reason string, alerts []string, since, at time.Time) {
	if !mo.lastDrop.IsZero() && at.Sub(mo.lastDrop) < mo.cfg.Cooldown {
		mo.m.suppressed.Inc()
		return
	}
	req := schemas.RetrainRequest{
		IdempotencyKey: fmt.Sprintf("%s/v%d/%s", mo.champ.Model, mo.champ.Version, since.UTC().Format(time.RFC3339)),
		Model:          mo.champ.Model, FromVersion: mo.champ.Version, Reason: reason,
		Alerts: alerts, DataFrom: since, RequestedAt: time.Now().UTC(),
	}
	if err := mo.publish(mo.kafka.Topics.Retrain, req.Model, req); err != nil {
		mo.log.Error("cannot publish retrain request; the next breach asks again", "key", req.IdempotencyKey, "err", err)
		return
	}
	mo.lastDrop = at
	mo.m.retrains.Inc()
	mo.log.Warn("retrain requested", "key", req.IdempotencyKey, "reason", reason, "data_from", since)
}

func (mo *Monitor) publish(topic, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %s record: %w", topic, err)
	}
	msg := message.NewMessage(watermill.NewUUID(), b)
	msg.Metadata.Set(kpubsub.KeyMetadata, key)
	return mo.pub.Publish(topic, msg)
}

func round(v float64) float64 { return math.Round(v*1e4) / 1e4 }

// incident tracks one kind of breach: how long it has held, and when it
// last fired.
type incident struct {
	streak  int
	since   time.Time // event time the current incident began
	firedAt time.Time // event time it last fired; zero: not yet
}

// observe folds one evaluation in and reports whether the breach fires now.
// A breach fires once it has held for consecutive evaluations, then stays
// quiet while it holds; if it still holds a cooldown after firing (the
// retrain did not cure it, or the gate kept the champion) it fires again as
// a new incident that starts now.
func (in *incident) observe(breached bool, at time.Time, consecutive int, cooldown time.Duration) bool {
	if !breached {
		*in = incident{}
		return false
	}
	in.streak++
	if in.streak == 1 {
		in.since = at
	}
	if in.streak < consecutive {
		return false
	}
	if !in.firedAt.IsZero() {
		if at.Sub(in.firedAt) < cooldown {
			return false
		}
		in.since = at
	}
	in.firedAt = at
	return true
}

// driftWindow is a count-based sliding window of binned feature values.
type driftWindow struct {
	ref    schemas.Profile
	bins   [][]uint8 // ring: slot -> feature -> bin
	counts [][]int   // feature -> bin -> count
	times  []time.Time
	next   int
	n      int // vectors in the window
	added  int // vectors ever added
	actual []float64

	incident
}

func newDriftWindow(ref schemas.Profile, size int) *driftWindow {
	w := &driftWindow{ref: ref, bins: make([][]uint8, size), counts: make([][]int, len(ref.Features)), times: make([]time.Time, size)}
	for i := range w.bins {
		w.bins[i] = make([]uint8, len(ref.Features))
	}
	for i, f := range ref.Features {
		w.counts[i] = make([]int, len(f.Fractions))
	}
	return w
}

func (w *driftWindow) ready() bool { return w.n == len(w.bins) }

func (w *driftWindow) oldest() time.Time {
	if w.n < len(w.bins) {
		return w.times[0]
	}
	return w.times[w.next]
}

func (w *driftWindow) add(x []float64) error {
	if len(x) != len(w.counts) {
		return fmt.Errorf("vector has %d values, reference profile %d features", len(x), len(w.counts))
	}
	slot := w.bins[w.next]
	if w.n == len(w.bins) {
		for f, b := range slot {
			w.counts[f][b]--
		}
	} else {
		w.n++
	}
	for f, v := range x {
		b := profile.Bin(&w.ref.Features[f], v)
		slot[f] = uint8(b)
		w.counts[f][b]++
	}
	w.next = (w.next + 1) % len(w.bins)
	w.added++
	return nil
}

func (w *driftWindow) psi() []float64 {
	out := make([]float64, len(w.counts))
	for f, c := range w.counts {
		w.actual = w.actual[:0]
		for _, k := range c {
			w.actual = append(w.actual, float64(k)/float64(w.n))
		}
		out[f] = PSI(w.ref.Features[f].Fractions, w.actual)
	}
	return out
}

// accuracyWindow keeps the latest (score, label) pairs of the champion.
type accuracyWindow struct {
	scores []float64
	labels []float64
	next   int
	n      int
	added  int

	incident
}

func newAccuracyWindow(size int) *accuracyWindow {
	return &accuracyWindow{scores: make([]float64, size), labels: make([]float64, size)}
}

func (a *accuracyWindow) add(score float64, label int) {
	a.scores[a.next], a.labels[a.next] = score, float64(label)
	a.next = (a.next + 1) % len(a.scores)
	a.n = min(a.n+1, len(a.scores))
	a.added++
}

func (a *accuracyWindow) metrics() (auc, logLoss float64) {
	return accuracy.AUC(a.scores[:a.n], a.labels[:a.n]), accuracy.LogLoss(a.scores[:a.n], a.labels[:a.n])
}
