package monitors

import (
	"math"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/schemas"
)

// maxPendingReports bounds the reports kept between two flushes: Run
// flushes after every poll, and a caller that feeds records without Run
// (a test, a replay) gets them published once this many are pending.
const maxPendingReports = 4096

// report is one statistic of one evaluation, kept as numbers and shared
// strings until it is published, so that an evaluation allocates nothing
// (the pending slice is reused).
type report struct {
	kind, segment, feature, stat, method string
	key                                  string // dedup key of (kind, segment, feature, stat), cached by the caller
	value, pvalue                        float64
	hasP                                 bool
	judged                               bool // threshold, comparison and breached apply
	threshold                            float64
	below, breached                      bool
	window                               schemas.Window
	samples, refRows                     int
	at                                   time.Time
}

// reportDrift queues the reports of one drift evaluation: per column the
// statistic its method judges (with its p-value for tests, and the
// threshold after the multiple-testing correction, so judge must have run),
// and PSI beside it when the method is not PSI.
func (mo *Monitor) reportDrift(w *driftWindow, checks []check) {
	for i := range checks {
		c := &checks[i]
		col := w.cols[i]
		r := report{
			kind: c.kind, segment: c.segment, feature: c.feature, stat: c.stat, method: c.stat, key: c.key,
			value: c.value, judged: true, threshold: c.threshold, below: c.below, breached: c.breached(),
			window: c.window, samples: c.samples, refRows: c.refRows, at: c.window.To,
		}
		if c.pvalue {
			r.value, r.pvalue, r.hasP = c.testStat, c.value, true
		}
		mo.pending = append(mo.pending, r)
		if c.stat != string(MethodPSI) {
			if col.psiKey == "" {
				col.psiKey = dedupKey(mo.champ.Model, mo.champ.Version, c.kind, c.segment, c.feature, string(MethodPSI))
			}
			mo.pending = append(mo.pending, report{
				kind: c.kind, segment: c.segment, feature: c.feature, stat: string(MethodPSI), method: c.stat, key: col.psiKey,
				value: c.psi, window: c.window, samples: c.samples, refRows: c.refRows, at: c.window.To,
			})
		}
	}
	mo.maybeFlush()
}

// reportAccuracy queues the accuracy reports of all traffic (segment "")
// or of one segment: ROC AUC judged against th (the holdout floor, or the
// fairness bar of a segment), the other metrics as context. A metric that
// is undefined on the window (NaN: one class only) is not reported.
func (mo *Monitor) reportAccuracy(segment string, m *accuracyMetrics, th float64, win schemas.Window, samples int) {
	for i, v := range [6]float64{m.auc, m.logLoss, m.brier, m.ece, m.precision, m.recall} {
		if math.IsNaN(v) {
			continue
		}
		r := report{
			kind: schemas.AlertAccuracy, segment: segment, stat: accuracyMetricNames[i], method: accuracyMetricNames[0],
			value: v, window: win, samples: samples, at: win.To,
		}
		if i == 0 && !math.IsNaN(th) {
			r.judged, r.threshold, r.below, r.breached = true, th, true, v < th
		}
		mo.pending = append(mo.pending, r)
	}
	mo.maybeFlush()
}

func (mo *Monitor) maybeFlush() {
	if len(mo.pending) >= maxPendingReports {
		mo.flushReports()
	}
}

// flushReports publishes the pending reports in one produce to the
// reports topic, keyed by model. A failed publish drops them (counted and
// logged): reports are a record of the statistics, the alert policy does
// not depend on them, and the next evaluation reports again.
func (mo *Monitor) flushReports() {
	if len(mo.pending) == 0 || mo.champ == nil {
		mo.pending = mo.pending[:0]
		return
	}
	now := time.Now().UTC()
	msgs := make([]*message.Message, 0, len(mo.pending))
	for i := range mo.pending {
		r := mo.toReport(&mo.pending[i], now)
		b, err := json.Marshal(&r)
		if err != nil {
			mo.log.Error("cannot encode report", "id", r.ID, "err", err)
			continue
		}
		// The report's id is deterministic and unique: it is the message's
		// UUID too (no random UUID per report).
		msg := message.NewMessage(r.ID, b)
		msg.Metadata.Set(kpubsub.KeyMetadata, r.Model)
		msgs = append(msgs, msg)
	}
	n := len(mo.pending)
	clear(mo.pending)
	mo.pending = mo.pending[:0]
	if err := mo.pub.Publish(mo.kafka.Topics.Reports, msgs...); err != nil {
		mo.m.reports.WithLabelValues("failed").Add(float64(n))
		mo.log.Error("cannot publish reports; they are dropped, the next evaluation reports again", "reports", n, "err", err)
		return
	}
	mo.m.reports.WithLabelValues("published").Add(float64(n))
}

// toReport is the published form of r.
func (mo *Monitor) toReport(r *report, now time.Time) schemas.Report {
	key := r.key
	if key == "" {
		key = dedupKey(mo.champ.Model, mo.champ.Version, r.kind, r.segment, r.feature, r.stat)
	}
	out := schemas.Report{
		ID: key + "/" + r.at.UTC().Format(time.RFC3339Nano), Kind: r.kind, Model: mo.champ.Model, Version: mo.champ.Version,
		Segment: r.segment, Feature: r.feature, Statistic: r.stat, Method: r.method, Value: finite(r.value),
		Breached: r.breached, Window: r.window, Samples: r.samples, ReferenceRows: r.refRows,
		EventTime: r.at, ReportedAt: now,
	}
	if r.hasP && !math.IsNaN(r.pvalue) {
		p := r.pvalue
		out.PValue = &p
	}
	if r.judged {
		out.Threshold, out.Comparison = r.threshold, ">"
		if r.below {
			out.Comparison = "<"
		}
	}
	return out
}

// finite maps NaN and infinities, which JSON cannot carry, to 0; a NaN
// statistic (an undefined test) is reported with Breached false.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
