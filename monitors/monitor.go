package monitors

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
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
	// PSIThreshold: a feature judged by PSI drifts when its PSI exceeds it.
	// Default 0.2 (the conventional "significant shift" level).
	PSIThreshold float64 `yaml:"psi_threshold"`
	// Methods overrides the drift statistic per feature name ("score" for
	// prediction drift); the default is Evidently's choice by feature type
	// and reference size (see column.go's defaultMethod).
	Methods map[string]Method `yaml:"methods"`
	// Thresholds per method: a distance drifts above it, a test when its
	// p-value is below it divided by the number of tests in the evaluation
	// (Bonferroni). Defaults: Evidently's (0.05 for ks and chisquare, 0.1
	// for wasserstein and jensenshannon), PSIThreshold for psi.
	Thresholds map[Method]float64 `yaml:"thresholds"`
	// ResolveFraction is the hysteresis band: a firing incident counts an
	// evaluation as clear only when a distance is below ResolveFraction x
	// its threshold, a p-value above threshold / ResolveFraction, or AUC
	// above the floor plus (1 - ResolveFraction) x AUCDrop, so a value
	// hovering at the threshold does not flap. Default 0.8; 1 disables.
	ResolveFraction float64 `yaml:"resolve_fraction"`
	// Consecutive evaluations a breach must hold before it fires. Default 3.
	Consecutive int `yaml:"consecutive"`
	// AccuracyWindow is how many of the champion's latest labels the
	// rolling AUC and log loss cover. Default 1000.
	AccuracyWindow int `yaml:"accuracy_window"`
	// MinLabels before accuracy is judged. Default 500.
	MinLabels int `yaml:"min_labels"`
	// Detectors run on the champion's per-label error stream, each raising
	// error_change alerts: "adwin" and "page_hinkley" on the absolute error
	// |label - score|, "ddm" on the 0/1 error at DecisionThreshold. Default
	// adwin only: in the pipeline labels arrive in bursts (a purchase labels
	// within minutes, a negative at the horizon), so the error stream is not
	// stationary at short scale, and Page-Hinkley with River's threshold
	// fired twice in 6 h of an unshifted demo (docs/monitors.md); DDM with
	// River's defaults false-alarms on stationary error rates
	// (detectors_test.go). Both are opt-in.
	Detectors []string `yaml:"detectors"`
	// ADWIN, PageHinkley and DDM configure the detectors; zero values are
	// River's defaults, except PageHinkley's mode, "up" by default here
	// (an error that falls is no incident).
	ADWIN       ADWINConfig       `yaml:"adwin"`
	PageHinkley PageHinkleyConfig `yaml:"page_hinkley"`
	DDM         DDMConfig         `yaml:"ddm"`
	// MinErrorIncrease: an ADWIN detection raises an error_change alert
	// only when the mean error of its window after the cut exceeds the mean
	// before it by at least this much (absolute). On a long stream ADWIN's cut is
	// significant for negligible rises: an unshifted storefront once raised
	// one at 0.3462 against 0.3444. Default 0.02; negative: any rise.
	MinErrorIncrease float64 `yaml:"min_error_increase"`
	// Segments are the dimensions every drift and accuracy metric is also
	// computed per value of: device, country, referrer. nil: all three; an
	// empty list: none.
	Segments []string `yaml:"segments"`
	// MinSegmentSamples: a segment is judged once its window holds this
	// many vectors (or labels). Default 500.
	MinSegmentSamples int `yaml:"min_segment_samples"`
	// MaxSegmentValues per dimension are monitored (memory is a window per
	// value); later values are counted and skipped. Default 16.
	MaxSegmentValues int `yaml:"max_segment_values"`
	// FairnessGap: a segment whose rolling ROC AUC falls this far below
	// the overall rolling AUC raises a fairness alert. Default 0.1.
	FairnessGap float64 `yaml:"fairness_gap"`
	// DecisionThreshold: a score at or above it is a positive decision, for
	// the rolling precision and recall. Default 0.5.
	DecisionThreshold float64 `yaml:"decision_threshold"`
	// AUCDrop: accuracy breaches when the rolling AUC falls this far below
	// the AUC the version had on its holdout at training time. Default 0.08.
	AUCDrop float64 `yaml:"auc_drop"`
	// Cooldown in event time after a retrain request during which the same
	// champion raises no other. A new champion ends it. It is also how long
	// a firing incident stays quiet before it fires again as a new incident
	// if its breach still holds. Default 2h.
	Cooldown time.Duration `yaml:"cooldown"`
	// ClearConsecutive evaluations without a breach resolve a firing
	// incident (a `resolved` alert). Default: Consecutive.
	ClearConsecutive int `yaml:"clear_consecutive"`
	// RetrainsPerHour caps retrain requests per rolling hour of event time,
	// whatever the incidents; a request over it is counted in
	// driftline_monitor_retrain_suppressed_total{reason="budget"} and held:
	// it goes out once the budget frees if one of its incidents is still
	// open (once; incidents that open meanwhile join it), and is dropped,
	// counted as reason="resolved", if all of them resolved first.
	// Default 3; negative: no cap.
	RetrainsPerHour int `yaml:"retrains_per_hour"`
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
	if c.Detectors == nil {
		c.Detectors = []string{DetectorADWIN}
	}
	if c.PageHinkley.Mode == "" {
		c.PageHinkley.Mode = PageHinkleyUp
	}
	if c.MinErrorIncrease == 0 {
		c.MinErrorIncrease = 0.02
	}
	if c.DecisionThreshold == 0 {
		c.DecisionThreshold = 0.5
	}
	if c.Segments == nil {
		c.Segments = []string{profile.DimDevice, profile.DimCountry, profile.DimReferrer}
	}
	if c.MinSegmentSamples == 0 {
		c.MinSegmentSamples = 500
	}
	if c.MaxSegmentValues == 0 {
		c.MaxSegmentValues = 16
	}
	if c.FairnessGap == 0 {
		c.FairnessGap = 0.1
	}
	if c.AUCDrop == 0 {
		c.AUCDrop = 0.08
	}
	if c.Cooldown == 0 {
		c.Cooldown = 2 * time.Hour
	}
	c.Thresholds = c.defaultThresholds()
	if c.ResolveFraction == 0 {
		c.ResolveFraction = 0.8
	}
	if c.ClearConsecutive == 0 {
		c.ClearConsecutive = c.Consecutive
	}
	if c.RetrainsPerHour == 0 {
		c.RetrainsPerHour = 3
	}
}

// defaultThresholds returns the threshold per method: the online defaults
// with Thresholds laid over them.
func (c *Config) defaultThresholds() map[Method]float64 {
	th := map[Method]float64{}
	for _, m := range Methods {
		th[m] = m.DefaultThreshold()
	}
	th[MethodPSI] = c.PSIThreshold
	// Online, a 2000-vector window is compared every 250 vectors for hours:
	// Evidently's batch thresholds for the distances (0.1) fired on the
	// demo's unshifted storefront (measured: docs/monitors.md), so the
	// online defaults are twice and one and a half times theirs.
	th[MethodWasserstein] = OnlineWassersteinThreshold
	th[MethodJensenShannon] = OnlineJensenShannonThreshold
	if th[MethodPSI] == 0 {
		th[MethodPSI] = 0.2
	}
	for m, v := range c.Thresholds {
		th[m] = v
	}
	return th
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
	case !(c.ResolveFraction > 0 && c.ResolveFraction <= 1):
		return fmt.Errorf("monitor: resolve_fraction must be in (0, 1], got %g", c.ResolveFraction)
	case c.ClearConsecutive < 1:
		return fmt.Errorf("monitor: clear_consecutive must be >= 1, got %d", c.ClearConsecutive)
	case c.MinLabels > c.AccuracyWindow:
		return fmt.Errorf("monitor: min_labels (%d) must not exceed accuracy_window (%d)", c.MinLabels, c.AccuracyWindow)
	}
	for _, d := range c.Segments {
		if !slices.Contains([]string{profile.DimDevice, profile.DimCountry, profile.DimReferrer}, d) {
			return fmt.Errorf("monitor: unknown segment dimension %q (want device, country or referrer)", d)
		}
	}
	if c.MinSegmentSamples < 1 || c.MinSegmentSamples > c.Window || c.MaxSegmentValues < 1 || !(c.FairnessGap > 0) {
		return fmt.Errorf("monitor: min_segment_samples must be 1..window, max_segment_values >= 1 and fairness_gap > 0")
	}
	for _, d := range c.Detectors {
		if !slices.Contains([]string{DetectorADWIN, DetectorPageHinkley, DetectorDDM}, d) {
			return fmt.Errorf("monitor: unknown detector %q (want adwin, page_hinkley or ddm)", d)
		}
	}
	if _, err := c.newDetectors(); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	for name, m := range c.Methods {
		if !slices.Contains(Methods, m) {
			return fmt.Errorf("monitor: feature %q: unknown method %q (want one of %v)", name, m, Methods)
		}
	}
	for m, v := range c.Thresholds {
		if !slices.Contains(Methods, m) || !(v > 0) {
			return fmt.Errorf("monitor: threshold of %q must be a known method and > 0, got %g", m, v)
		}
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
	// retrain is a retrain request whose publish failed: retried after
	// every poll until it goes out (its incident has already fired, so no
	// breach would ask again before the cooldown).
	retrain   *schemas.RetrainRequest
	retrainAt time.Time
	// held is a retrain request the hourly budget held back: sent once the
	// budget frees if one of its incidents is still firing, dropped when
	// all of them resolved first (see releaseHeld).
	held *heldRetrain
	// restored are the incidents open on the alerts topic when Run
	// started, by champion version and dedup key; install takes over the
	// champion's (see restore.go).
	restored map[int]map[string]*incident
	// asked are the watched model's retrain requests on the retrain topic
	// when Run started; install restores the champion's cooldown and held
	// request from them (see restore.go). noRetrainRestore skips that and
	// the budget's restore (tests show what it restores).
	asked            []pastRetrain
	askedRead        bool // the retrain topic was read to its end
	noRetrainRestore bool
	score            [1]float64
	incidents        map[string]*incident // by dedup key, for the champion
	detectors        []errorDetector
	segDims          []segmentDim
	segRefs          map[string]*schemas.SegmentProfile
	budget           retrainBudget
	checks           []check  // reused by every evaluation
	pending          []report // reports of the evaluations since the last flush

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
	mo.budget.perHour = cfg.RetrainsPerHour
	feed.OnChampion(func(v *schemas.ModelVersion) {
		if v.Model == cfg.Model {
			mo.next.Store(v)
		}
	})
	return mo, nil
}

// restoreIncidentsTimeout bounds reading the alerts topic at start.
const restoreIncidentsTimeout = 2 * time.Minute

// Run consumes vectors and labels until ctx ends.
func (mo *Monitor) Run(ctx context.Context) error {
	select {
	case <-mo.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	// Before the champion installs: it takes over its open incidents. A
	// topic that cannot be read within restoreIncidentsTimeout (a
	// partition without leader) must not keep the monitor from starting.
	rctx, cancel := context.WithTimeout(ctx, restoreIncidentsTimeout)
	err := mo.restoreIncidents(rctx)
	if err != nil {
		if ctx.Err() != nil {
			cancel()
			return nil
		}
		mo.log.Error("incidents open before this start are not taken over: a condition still breaching opens a new one", "err", err)
	}
	if !mo.noRetrainRestore {
		err = mo.restoreRetrains(rctx)
	}
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		mo.log.Error("the retrain cooldown, budget and held request are not restored: the first incident may ask for a retrain at once", "err", err)
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
		mo.flushReports()
		mo.retryPending()
	}
}

// install makes v the version monitored: a new reference, a fresh window.
func (mo *Monitor) install(v *schemas.ModelVersion) {
	if mo.champ != nil && mo.champ.Version == v.Version {
		return
	}
	mo.flushReports() // they name the outgoing champion
	if mo.champ != nil {
		mo.m.drift.DeletePartialMatch(prometheus.Labels{"version": strconv.Itoa(mo.champ.Version)})
		mo.m.segmentAccuracy.DeletePartialMatch(prometheus.Labels{"version": strconv.Itoa(mo.champ.Version)})
	}
	mo.champ = v
	mo.drift = nil
	if err := checkReference(v); err != nil {
		mo.log.Error("feature drift is not monitored for this champion", "model", v.Model, "version", v.Version, "err", err)
	} else {
		mo.drift, err = newDriftWindow(v.Reference, mo.cfg.Window, mo.cfg.Methods, mo.cfg.Thresholds)
		if err != nil {
			mo.log.Error("feature drift is not monitored for this champion", "model", v.Model, "version", v.Version, "err", err)
		}
	}
	mo.scores = nil
	if err := profile.Validate(&v.Reference.Score); err != nil || len(v.Reference.Score.Fractions) < 2 {
		mo.log.Error("prediction drift is not monitored for this champion: no usable reference score profile", "model", v.Model, "version", v.Version, "err", err)
	} else {
		var err error
		mo.scores, err = newDriftWindow(schemas.Profile{Rows: v.Reference.Rows, Features: []schemas.FeatureProfile{v.Reference.Score}}, mo.cfg.Window, mo.cfg.Methods, mo.cfg.Thresholds)
		if err != nil {
			mo.log.Error("prediction drift is not monitored for this champion", "model", v.Model, "version", v.Version, "err", err)
		}
	}
	mo.acc = newAccuracyWindow(mo.cfg.AccuracyWindow)
	mo.lastDrop = time.Time{}
	mo.retrain = nil // asked for the outgoing champion
	mo.held = nil
	mo.incidents = map[string]*incident{}
	for key, in := range mo.restored[v.Version] {
		mo.incidents[key] = in
		mo.m.restored.Inc()
		mo.log.Info("incident taken over from before the restart", "incident", in.id, "dedup_key", key)
	}
	delete(mo.restored, v.Version)
	mo.restoreRetrainPolicy(v.Version)
	mo.detectors, _ = mo.cfg.newDetectors() // Validate built them once already
	if mo.drift != nil {
		mo.attachGauges(mo.drift, "")
	}
	if mo.scores != nil {
		mo.attachGauges(mo.scores, "")
	}
	mo.installSegments(v)
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
	if mo.retrain != nil && r.Offset%256 == 0 {
		mo.retryPending() // also between polls, on a long backlog
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
		return mo.observeVector(&v)
	case mo.kafka.Topics.Predictions:
		var p schemas.Prediction
		if err := json.Unmarshal(r.Value, &p); err != nil {
			return fmt.Errorf("cannot decode prediction: %w", err)
		}
		if p.Shadow || p.Model != mo.cfg.Model || p.Version != mo.champ.Version || mo.scores == nil {
			return nil
		}
		mo.score[0] = p.Score
		if err := mo.scores.add(mo.score[:], p.EventTime); err != nil {
			return err
		}
		if mo.scores.ready() && mo.scores.added%mo.cfg.EvaluateEvery == 0 {
			mo.evaluateDrift(mo.scores, schemas.AlertPredictionDrift, "", p.EventTime)
		}
		mo.segmentPrediction(&p)
	case mo.kafka.Topics.Labels:
		var l schemas.Label
		if err := json.Unmarshal(r.Value, &l); err != nil {
			return fmt.Errorf("cannot decode label: %w", err)
		}
		if l.Model != mo.cfg.Model || l.Version != mo.champ.Version {
			return nil
		}
		mo.acc.add(l.Score, l.Label, l.EventTime)
		mo.segmentLabel(&l)
		if !l.LabelTime.IsZero() {
			mo.m.labelLag.Observe(l.LabelTime.Sub(l.EventTime).Seconds())
		}
		// Accuracy is judged when labels arrive: a negative's prediction
		// time is a horizon older than its label, and a retrain asked to
		// train on data from it would mix the world before a change into
		// its training set.
		at := l.LabelTime
		if at.IsZero() {
			at = l.EventTime
		}
		mo.detect(l.Score, l.Label, at)
		if mo.acc.n >= mo.cfg.MinLabels && mo.acc.added%mo.cfg.EvaluateEvery == 0 {
			mo.evaluateAccuracy(at)
		}
	}
	return nil
}

// observeVector feeds one feature vector of the watched model to the
// drift window of all traffic and to those of its segments.
func (mo *Monitor) observeVector(v *schemas.FeatureVector) error {
	if mo.drift == nil {
		return nil
	}
	if err := mo.drift.add(v.Values, v.EventTime); err != nil {
		return err
	}
	if mo.drift.ready() && mo.drift.added%mo.cfg.EvaluateEvery == 0 {
		mo.evaluateDrift(mo.drift, schemas.AlertDrift, "", v.EventTime)
	}
	mo.segmentVector(v)
	return nil
}

// evaluateDrift compares a window with its reference: each column's
// statistic by its method, one check per column, judged by the alert
// policy; the incidents that open publish one retrain request between them.
func (mo *Monitor) evaluateDrift(w *driftWindow, kind, segment string, at time.Time) {
	checks := mo.checks[:0]
	win := schemas.Window{From: w.oldest(), To: at}
	for i, c := range w.cols {
		st := w.evaluate(i)
		if c.psiGauge != nil {
			c.psiGauge.Set(st.psi)
		}
		if c.gauge != nil {
			c.gauge.Set(st.value)
		}
		if c.key == "" {
			c.key = dedupKey(mo.champ.Model, mo.champ.Version, kind, segment, c.ref.Name, string(c.method))
		}
		checks = append(checks, check{
			kind: kind, feature: c.ref.Name, segment: segment, stat: string(c.method), key: c.key,
			value: st.value, threshold: c.threshold, below: c.method.HasPValue(), pvalue: c.method.HasPValue(),
			window: win, samples: w.n,
			drift: true, psi: st.psi, testStat: st.stat, refRows: c.g.refRowsOr(c.ref.Rows),
		})
	}
	mo.checks = checks
	mo.judge(kind, checks, at, 1+mo.liveSegments(), true)
	mo.reportDrift(w, checks)
}

func (mo *Monitor) evaluateAccuracy(at time.Time) {
	m := mo.acc.metrics(mo.cfg.DecisionThreshold)
	mo.m.setAccuracy(m)
	floor := mo.champ.Metrics.AUC - mo.cfg.AUCDrop
	checks := append(mo.checks[:0], check{
		kind: schemas.AlertAccuracy, stat: "roc_auc", value: m.auc, threshold: floor, below: true, band: mo.cfg.AUCDrop,
		window: schemas.Window{From: mo.acc.oldest(), To: at}, samples: mo.acc.n,
		evidence: m.evidence(mo.champ.Metrics.AUC),
	})
	mo.judge("accuracy", checks, at, 1, true)
	mo.reportAccuracy("", &m, floor, checks[0].window, mo.acc.n)
	// Fairness findings do not ask for a retrain: a model retrained on the
	// same mix would likely keep the gap; they are for people to act on.
	checks = mo.segmentAccuracyChecks(checks[:0], m, at)
	mo.checks = checks
	mo.judge(schemas.AlertFairness, checks, at, 1, false)
}

// judge applies the alert policy to one evaluation's checks: multiple
// testing control over its p-values, then per dedup key consecutive
// breaches, cooldown and resolution. Incidents that open publish a firing
// alert each and, between them, one retrain request; incidents that clear
// publish a resolved alert.
//
// families multiplies the number of p-value tests the correction divides
// alpha by: the segments evaluated beside all traffic. retrain says
// whether opening incidents ask for a retrain.
func (mo *Monitor) judge(reason string, checks []check, at time.Time, families int, retrain bool) {
	defer mo.releaseHeld(at) // after the incidents moved: one that resolved no longer asks
	bonferroni(checks, families)
	var ids []string
	var since time.Time
	for i := range checks {
		c := &checks[i]
		key := c.key
		if key == "" {
			key = dedupKey(mo.champ.Model, mo.champ.Version, c.kind, c.segment, c.feature, c.stat)
		}
		in := mo.incidents[key]
		if in == nil {
			in = &incident{key: key}
			mo.incidents[key] = in
		}
		switch in.observe(c.breached(), c.cleared(mo.cfg.ResolveFraction), at, mo.cfg.Consecutive, mo.cfg.ClearConsecutive, mo.cfg.Cooldown) {
		case fire:
			in.id = key + "/" + at.UTC().Format(time.RFC3339)
			if in.silent = mo.covered(c); in.silent {
				mo.m.covered.Inc()
				continue
			}
			mo.alert(c, in, schemas.AlertFiring, at)
			ids = append(ids, in.id)
			if since.IsZero() || in.since.Before(since) {
				since = in.since
			}
		case resolve:
			if !in.silent {
				mo.alert(c, in, schemas.AlertResolved, at)
			}
		}
	}
	if len(ids) > 0 && retrain {
		mo.requestRetrain(reason, ids, since, at)
	}
}

// covered reports whether a segment's drift finding is already told by a
// firing incident of all traffic on the same feature and statistic: a
// shift of the whole population moves every segment, and one alert says
// so. Such segment incidents are tracked silently (no firing, no resolved
// alert; counted in driftline_monitor_alerts_covered_total); a segment
// that moves while all traffic does not is news and alerts.
func (mo *Monitor) covered(c *check) bool {
	if c.segment == "" || (c.kind != schemas.AlertDrift && c.kind != schemas.AlertPredictionDrift) {
		return false
	}
	in := mo.incidents[dedupKey(mo.champ.Model, mo.champ.Version, c.kind, "", c.feature, c.stat)]
	return in != nil && in.firing
}

func (mo *Monitor) alert(c *check, in *incident, status string, at time.Time) schemas.Alert {
	a := schemas.Alert{
		ID: in.id, Kind: c.kind, Status: status, DedupKey: in.key, Incident: in.id,
		Severity: c.severity(mo.cfg.AUCDrop), Model: mo.champ.Model, Version: mo.champ.Version,
		Feature: c.feature, Segment: c.segment, Statistic: c.stat, Value: round(c.value), Threshold: c.threshold,
		Comparison: ">", Window: c.window, Samples: c.samples, EventTime: at, FiredAt: time.Now().UTC(),
		Evidence: c.allEvidence(),
	}
	if c.below {
		a.Comparison = "<"
	}
	if status == schemas.AlertResolved {
		a.ID = in.id + "/resolved"
		a.Severity = schemas.SeverityInfo
	}
	if err := mo.publish(mo.kafka.Topics.Alerts, a.Model, a); err != nil {
		mo.log.Error("cannot publish alert", "id", a.ID, "err", err)
	}
	mo.m.alert(c.kind, status).Inc()
	mo.log.Warn("alert", "id", a.ID, "status", status, "value", a.Value, "threshold", a.Threshold)
	return a
}

// requestRetrain publishes one retrain request per incident: not again for
// this champion until the cooldown (event time) has passed, and not more
// than the budget per hour. A request over the budget is held and goes out
// once the budget frees, if its incidents are still open (releaseHeld);
// incidents that open while one is held join it, so they too get one
// request between them.
func (mo *Monitor) requestRetrain(reason string, alerts []string, since, at time.Time) {
	if !mo.lastDrop.IsZero() && at.Sub(mo.lastDrop) < mo.cfg.Cooldown {
		mo.m.suppressedCooldown.Inc()
		return
	}
	if r := mo.retrain; r != nil {
		// A request not published yet (the broker failed) covers this
		// incident too: one request, never one overwriting another.
		r.Alerts = append(r.Alerts, alerts...)
		return
	}
	if h := mo.held; h != nil {
		h.alerts = append(h.alerts, alerts...)
		if since.Before(h.since) {
			h.since = since
		}
		mo.releaseHeld(at)
		return
	}
	if !mo.budget.allow(at) {
		mo.m.suppressedBudget.Inc()
		mo.held = &heldRetrain{reason: reason, alerts: slices.Clone(alerts), since: since}
		mo.log.Warn("retrain request held: hourly budget spent; sent when it frees if the incident is still open",
			"budget", mo.cfg.RetrainsPerHour, "alerts", alerts)
		return
	}
	mo.sendRetrain(reason, alerts, since, at)
}

// heldRetrain is a retrain request the budget held back.
type heldRetrain struct {
	reason string
	alerts []string // incident ids
	since  time.Time
}

// releaseHeld sends the held retrain request once the budget allows one
// at event time at, naming the incidents of it that are still firing;
// when none is, the request is dropped (counted as suppressed, reason
// resolved). The idempotency key follows the same rule as an immediate
// request's (model, version, start of the earliest breach), and the
// request goes out once: it is no longer held after.
func (mo *Monitor) releaseHeld(at time.Time) {
	h := mo.held
	if h == nil {
		return
	}
	h.alerts = slices.DeleteFunc(h.alerts, func(id string) bool { return !mo.firing(id) })
	if len(h.alerts) == 0 {
		mo.held = nil
		mo.m.suppressedResolved.Inc()
		mo.log.Info("held retrain request dropped: its incidents resolved before the budget freed")
		return
	}
	if mo.retrain != nil || !mo.budget.allow(at) {
		return // a request still unpublished goes first; it counts against the budget once out
	}
	mo.held = nil
	mo.sendRetrain(h.reason, h.alerts, h.since, at)
}

// firing reports whether the incident with this id is open.
func (mo *Monitor) firing(id string) bool {
	for _, in := range mo.incidents {
		if in.id == id {
			return in.firing
		}
	}
	return false
}

// sendRetrain publishes a retrain request for incidents alerts, whose
// breach began at since, decided at event time at.
func (mo *Monitor) sendRetrain(reason string, alerts []string, since, at time.Time) {
	req := schemas.RetrainRequest{
		IdempotencyKey: fmt.Sprintf("%s/v%d/%s", mo.champ.Model, mo.champ.Version, since.UTC().Format(time.RFC3339)),
		Model:          mo.champ.Model, FromVersion: mo.champ.Version, Reason: reason,
		Alerts: alerts, DataFrom: since, RequestedAt: time.Now().UTC(), DecidedAt: at.UTC(),
	}
	mo.retrain, mo.retrainAt = &req, at
	mo.retryPending()
}

// retryPending publishes the pending retrain request, if any; on failure it
// stays pending for the next poll.
func (mo *Monitor) retryPending() {
	req := mo.retrain
	if req == nil {
		return
	}
	if err := mo.publish(mo.kafka.Topics.Retrain, req.Model, *req); err != nil {
		mo.log.Error("cannot publish retrain request; retried after the next poll", "key", req.IdempotencyKey, "err", err)
		return
	}
	mo.retrain = nil
	mo.lastDrop = mo.retrainAt
	mo.budget.record(mo.retrainAt)
	mo.m.retrains.Inc()
	mo.log.Warn("retrain requested", "key", req.IdempotencyKey, "reason", req.Reason, "data_from", req.DataFrom)
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

// driftWindow is a count-based sliding window of feature vectors (or
// scores), one column per feature against its reference profile.
type driftWindow struct {
	ref    schemas.Profile
	cols   []*column
	vals   [][]slot // ring: slot -> feature -> value and where it was counted
	times  []time.Time
	next   int
	n      int // vectors in the window
	added  int // vectors ever added
	actual []float64
	ks     KSScratch
	ksr    ksScratch
}

// newDriftWindow builds the window of a reference profile; methods
// overrides the default method per feature name, thresholds the default
// threshold per method.
func newDriftWindow(ref schemas.Profile, size int, methods map[string]Method, thresholds map[Method]float64) (*driftWindow, error) {
	w := &driftWindow{ref: ref, vals: make([][]slot, size), times: make([]time.Time, size)}
	for i := range w.vals {
		w.vals[i] = make([]slot, len(ref.Features))
	}
	for i := range ref.Features {
		p := &ref.Features[i]
		rows := p.Rows
		if rows == 0 {
			rows = ref.Rows
		}
		m, ok := methods[p.Name]
		if !ok {
			m = defaultMethod(p, rows)
		}
		if (m == MethodKS || m == MethodWasserstein) && p.Sketch == nil {
			return nil, fmt.Errorf("cannot monitor %s by %s: its reference profile has no sketch", p.Name, m)
		}
		if m == MethodZ {
			m = MethodChiSquare
		}
		c, err := newColumn(p, m, thresholds[m])
		if err != nil {
			return nil, err
		}
		w.cols = append(w.cols, c)
	}
	return w, nil
}

func (w *driftWindow) ready() bool { return w.n == len(w.vals) }

func (w *driftWindow) oldest() time.Time {
	if w.n < len(w.vals) {
		return w.times[0]
	}
	return w.times[w.next]
}

func (w *driftWindow) add(x []float64, at time.Time) error {
	if len(x) != len(w.cols) {
		return fmt.Errorf("vector has %d values, reference profile %d features", len(x), len(w.cols))
	}
	s := w.vals[w.next]
	if w.n == len(w.vals) {
		for f := range s {
			w.cols[f].remove(&s[f])
		}
	} else {
		w.n++
	}
	for f, v := range x {
		s[f] = w.cols[f].add(v)
	}
	w.times[w.next] = at
	w.next = (w.next + 1) % len(w.vals)
	w.added++
	return nil
}

// stats are one column's statistics over the current window.
type stats struct {
	psi   float64
	value float64 // of the column's method: a distance, or a p-value
	stat  float64 // the test statistic behind a p-value (KS D, χ²)
}

// evaluate computes column f's PSI and the statistic of its method.
func (w *driftWindow) evaluate(f int) stats {
	c := w.cols[f]
	w.actual = c.fractions(w.actual, w.n)
	st := stats{psi: PSI(c.ref.Fractions, w.actual), stat: math.NaN()}
	switch c.method {
	case MethodPSI:
		st.value = st.psi
	case MethodJensenShannon:
		st.value = JensenShannonBinned(c.ref.Fractions, w.actual)
	case MethodChiSquare:
		st.stat, st.value = ChiSquare(c.ref.Fractions, w.actual)
	case MethodKS:
		st.stat, st.value = w.ks.ksPValue(c.g.refRows, w.n, w.ksRefined(f))
	case MethodWasserstein:
		st.value = c.wasserstein(w.n)
	}
	return st
}

// accuracyWindow keeps the latest (score, label) pairs of the champion.
type accuracyWindow struct {
	scores  []float64
	labels  []float64
	next    int
	n       int
	added   int
	times   []time.Time
	scratch accuracy.AUCScratch
}

func newAccuracyWindow(size int) *accuracyWindow {
	return &accuracyWindow{scores: make([]float64, size), labels: make([]float64, size), times: make([]time.Time, size)}
}

func (a *accuracyWindow) oldest() time.Time {
	if a.n < len(a.scores) {
		return a.times[0]
	}
	return a.times[a.next]
}

func (a *accuracyWindow) add(score float64, label int, at time.Time) {
	a.scores[a.next], a.labels[a.next], a.times[a.next] = score, float64(label), at
	a.next = (a.next + 1) % len(a.scores)
	a.n = min(a.n+1, len(a.scores))
	a.added++
}

// accuracyMetrics are the rolling accuracy figures of a window of labels.
type accuracyMetrics struct {
	auc, logLoss, brier, ece, precision, recall float64
}

func (m *accuracyMetrics) evidence(holdoutAUC float64) map[string]float64 {
	ev := map[string]float64{"holdout_auc": holdoutAUC}
	for k, v := range map[string]float64{
		"log_loss": m.logLoss, "brier": m.brier, "ece": m.ece, "precision": m.precision, "recall": m.recall,
	} {
		if !math.IsNaN(v) {
			ev[k] = round(v)
		}
	}
	return ev
}

func (a *accuracyWindow) metrics(threshold float64) accuracyMetrics {
	s, l := a.scores[:a.n], a.labels[:a.n]
	m := accuracyMetrics{
		auc: accuracy.AUCWith(&a.scratch, s, l), logLoss: accuracy.LogLoss(s, l),
		brier: accuracy.Brier(s, l), ece: accuracy.ECE(s, l),
	}
	m.precision, m.recall = accuracy.PrecisionRecall(s, l, threshold)
	return m
}
