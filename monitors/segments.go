package monitors

import (
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// A segment is one value of one segment dimension ("device=mobile"): the
// monitor keeps for it what it keeps for all traffic — a drift window of
// the features and one of the scores, an accuracy window — and judges it
// the same way, once it has MinSegmentSamples records. Its drift reference
// is the champion's profile of that segment when the trainer stored one
// (schemas.Profile.Segments), else the segment's own first Window records
// after the champion went live: drift since go-live, not since training.
type segment struct {
	key    string
	drift  segmentDrift
	scores segmentDrift
	acc    *accuracyWindow
	gauges accuracyGauges
}

// segmentDim holds the segments of one dimension, by value. The map is
// looked up with the record's decoded string, which does not allocate.
type segmentDim struct {
	name   string
	values map[string]*segment
}

// segmentDrift is a segment's drift window, or the vectors collected so
// far for its self-reference.
type segmentDrift struct {
	w     *driftWindow
	names []string
	boot  [][]float64
	off   bool // the reference could not be built: not monitored
}

// installSegments prepares the segment dimensions for a new champion.
func (mo *Monitor) installSegments(v *schemas.ModelVersion) {
	mo.segDims = mo.segDims[:0]
	for _, d := range mo.cfg.Segments {
		mo.segDims = append(mo.segDims, segmentDim{name: d, values: map[string]*segment{}})
	}
	mo.segRefs = map[string]*schemas.SegmentProfile{}
	for i := range v.Reference.Segments {
		sp := &v.Reference.Segments[i]
		mo.segRefs[sp.Segment] = sp
	}
}

// segmentOf returns the segment of value in dimension d, creating it while
// the dimension has fewer than MaxSegmentValues; nil for an empty value or
// one over the cap (counted).
func (mo *Monitor) segmentOf(d *segmentDim, value string) *segment {
	if value == "" {
		return nil
	}
	if s, ok := d.values[value]; ok {
		return s
	}
	if len(d.values) >= mo.cfg.MaxSegmentValues {
		mo.m.segmentsDropped.Inc()
		return nil
	}
	key := d.name + "=" + value
	s := &segment{key: key, acc: newAccuracyWindow(mo.cfg.AccuracyWindow)}
	s.gauges = mo.m.accuracyGauges(key, mo.champ.Version)
	var featNames []string
	if mo.drift != nil {
		for _, c := range mo.drift.cols {
			featNames = append(featNames, c.ref.Name)
		}
	} else {
		s.drift.off = true
	}
	s.drift.names = featNames
	s.scores.names = []string{profile.ScoreName}
	if mo.scores == nil {
		s.scores.off = true
	}
	if ref := mo.segRefs[key]; ref != nil {
		if !s.drift.off {
			s.drift.start(mo, schemas.Profile{Rows: ref.Rows, Features: ref.Features}, key)
		}
		if !s.scores.off && profile.Validate(&ref.Score) == nil && len(ref.Score.Fractions) >= 2 {
			s.scores.start(mo, schemas.Profile{Rows: ref.Rows, Features: []schemas.FeatureProfile{ref.Score}}, key)
		}
	}
	d.values[value] = s
	return s
}

// start builds the drift window of a segment over ref.
func (sd *segmentDrift) start(mo *Monitor, ref schemas.Profile, key string) {
	w, err := newDriftWindow(ref, mo.cfg.Window, mo.cfg.Methods, mo.cfg.Thresholds)
	if err != nil {
		mo.log.Warn("segment drift is not monitored", "segment", key, "err", err)
		sd.off = true
		return
	}
	mo.attachGauges(w, key)
	sd.w, sd.boot = w, nil
}

// add feeds one vector; it reports whether the window is due for an
// evaluation.
func (sd *segmentDrift) add(mo *Monitor, key string, x []float64, at time.Time) bool {
	if sd.off {
		return false
	}
	if sd.w == nil {
		if len(x) != len(sd.names) {
			return false
		}
		sd.boot = append(sd.boot, slices.Clone(x))
		if len(sd.boot) == mo.cfg.Window {
			sd.start(mo, schemas.Profile{Rows: len(sd.boot), Features: profile.Build(sd.names, sd.boot, profile.DefaultBins)}, key)
			mo.log.Info("segment reference taken from its first window", "segment", key, "vectors", mo.cfg.Window)
		}
		return false
	}
	if err := sd.w.add(x, at); err != nil {
		return false
	}
	return sd.w.n >= mo.cfg.MinSegmentSamples && sd.w.added%mo.cfg.EvaluateEvery == 0
}

// liveSegments counts the segments whose drift windows are evaluated, for
// the multiple-testing correction.
func (mo *Monitor) liveSegments() int {
	n := 0
	for i := range mo.segDims {
		for _, s := range mo.segDims[i].values {
			if s.drift.w != nil && s.drift.w.n >= mo.cfg.MinSegmentSamples {
				n++
			}
		}
	}
	return n
}

func (mo *Monitor) segmentVector(v *schemas.FeatureVector) {
	for i := range mo.segDims {
		d := &mo.segDims[i]
		s := mo.segmentOf(d, profile.SegmentValue(&v.Segments, d.name))
		if s != nil && s.drift.add(mo, s.key, v.Values, v.EventTime) {
			mo.evaluateDrift(s.drift.w, schemas.AlertDrift, s.key, v.EventTime)
		}
	}
}

func (mo *Monitor) segmentPrediction(p *schemas.Prediction) {
	for i := range mo.segDims {
		d := &mo.segDims[i]
		s := mo.segmentOf(d, profile.SegmentValue(&p.Segments, d.name))
		if s != nil && s.scores.add(mo, s.key, mo.score[:], p.EventTime) {
			mo.evaluateDrift(s.scores.w, schemas.AlertPredictionDrift, s.key, p.EventTime)
		}
	}
}

func (mo *Monitor) segmentLabel(l *schemas.Label) {
	for i := range mo.segDims {
		d := &mo.segDims[i]
		if s := mo.segmentOf(d, profile.SegmentValue(&l.Segments, d.name)); s != nil {
			s.acc.add(l.Score, l.Label, l.EventTime)
		}
	}
}

// segmentAccuracyChecks computes every segment's rolling accuracy (gauges)
// and, for segments with MinSegmentSamples labels, a fairness check: the
// segment's ROC AUC against the overall one less FairnessGap.
func (mo *Monitor) segmentAccuracyChecks(checks []check, overall accuracyMetrics, at time.Time) []check {
	if math.IsNaN(overall.auc) {
		return checks
	}
	for i := range mo.segDims {
		for _, s := range mo.segDims[i].values {
			if s.acc.n < mo.cfg.MinSegmentSamples {
				continue
			}
			m := s.acc.metrics(mo.cfg.DecisionThreshold)
			s.gauges.set(m)
			ev := m.evidence(mo.champ.Metrics.AUC)
			ev["overall_auc"] = round(overall.auc)
			win := schemas.Window{From: s.acc.oldest(), To: at}
			mo.reportAccuracy(s.key, &m, overall.auc-mo.cfg.FairnessGap, win, s.acc.n)
			checks = append(checks, check{
				kind: schemas.AlertFairness, segment: s.key, stat: "roc_auc", value: m.auc,
				threshold: overall.auc - mo.cfg.FairnessGap, below: true, band: mo.cfg.FairnessGap,
				window: schemas.Window{From: s.acc.oldest(), To: at}, samples: s.acc.n, evidence: ev,
			})
		}
	}
	return checks
}

// accuracyGauges are one segment's accuracy gauges, looked up once.
type accuracyGauges [6]prometheus.Gauge

var accuracyMetricNames = [6]string{"roc_auc", "log_loss", "brier", "ece", "precision", "recall"}

func (m *metrics) accuracyGauges(segment string, version int) accuracyGauges {
	var g accuracyGauges
	for i, name := range accuracyMetricNames {
		g[i] = m.segmentAccuracy.WithLabelValues(name, segment, strconv.Itoa(version))
	}
	return g
}

func (g *accuracyGauges) set(a accuracyMetrics) {
	for i, v := range [6]float64{a.auc, a.logLoss, a.brier, a.ece, a.precision, a.recall} {
		g[i].Set(v)
	}
}

// attachGauges gives every column of w its drift gauge, labelled by
// feature, segment ("" for all traffic), statistic and version.
func (mo *Monitor) attachGauges(w *driftWindow, segment string) {
	v := strconv.Itoa(mo.champ.Version)
	for _, c := range w.cols {
		c.gauge = mo.m.drift.WithLabelValues(c.ref.Name, segment, string(c.method), v)
		if segment == "" {
			c.psiGauge = mo.m.psi.WithLabelValues(c.ref.Name)
		}
	}
}
