package monitors

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	psi       *prometheus.GaugeVec
	auc       prometheus.Gauge
	logLoss   prometheus.Gauge
	brier     prometheus.Gauge
	ece       prometheus.Gauge
	precision prometheus.Gauge
	recall    prometheus.Gauge
	labelLag  prometheus.Histogram

	drift           *prometheus.GaugeVec
	segmentAccuracy *prometheus.GaugeVec
	segmentsDropped prometheus.Counter
	covered         prometheus.Counter
	version         prometheus.Gauge
	alerts          *prometheus.CounterVec
	retrains        prometheus.Counter
	suppressed      *prometheus.CounterVec
	reports         *prometheus.CounterVec

	suppressedCooldown prometheus.Counter
	suppressedBudget   prometheus.Counter
	suppressedResolved prometheus.Counter
	restored           prometheus.Counter
	alertChildren      map[[2]string]prometheus.Counter
}

// alert returns the counter of alerts of a kind and status, looked up once
// per pair: alerts are rare, but evaluations must not build label sets.
func (m *metrics) alert(kind, status string) prometheus.Counter {
	k := [2]string{kind, status}
	c, ok := m.alertChildren[k]
	if !ok {
		c = m.alerts.WithLabelValues(kind, status)
		m.alertChildren[k] = c
	}
	return c
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		psi: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_monitor_psi", Help: "Population stability index of a feature, current window vs the champion's reference.",
		}, []string{"feature"}),
		auc: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_roc_auc", Help: "Rolling ROC AUC of the champion on its latest labels.",
		}),
		logLoss: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_log_loss", Help: "Rolling log loss of the champion on its latest labels.",
		}),
		brier: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_brier", Help: "Rolling Brier score of the champion on its latest labels.",
		}),
		ece: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_ece", Help: "Rolling expected calibration error (10 equal-width bins) of the champion on its latest labels.",
		}),
		precision: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_precision", Help: "Rolling precision of the champion at the decision threshold.",
		}),
		recall: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_recall", Help: "Rolling recall of the champion at the decision threshold.",
		}),
		labelLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "driftline_monitor_label_lag_seconds", Help: "Event time from prediction to its label (label_time - event_time).",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200},
		}),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_monitor_drift", Help: "Drift statistic of a feature (or score) over the current window vs its reference, by segment (empty: all traffic) and champion version; statistic is the method: a distance, or a test's p-value.",
		}, []string{"feature", "segment", "statistic", "version"}),
		segmentAccuracy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_monitor_segment_accuracy", Help: "Rolling accuracy metric of the champion on a segment's latest labels.",
		}, []string{"metric", "segment", "version"}),
		segmentsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_monitor_segment_values_dropped_total", Help: "Records whose segment value was not monitored: its dimension already had max_segment_values values.",
		}),
		covered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_monitor_alerts_covered_total", Help: "Segment drift incidents not alerted because all traffic's incident on the same feature was firing.",
		}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_model_version", Help: "Champion version being monitored.",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_monitor_alerts_total", Help: "Alerts published, by kind and status (firing, resolved).",
		}, []string{"kind", "status"}),
		retrains: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_monitor_retrain_requests_total", Help: "Retrain requests published.",
		}),
		suppressed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_monitor_retrain_suppressed_total", Help: "Retrain requests not sent when their incidents fired, by reason: cooldown (one per incident), budget (retrains_per_hour spent: held and sent once it frees while an incident is open) or resolved (held by the budget until every incident it was for resolved: never sent).",
		}, []string{"reason"}),
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_monitor_reports_total", Help: "Drift and accuracy reports of the evaluations, by result: published to the reports topic, or failed (dropped).",
		}, []string{"result"}),
		alertChildren: map[[2]string]prometheus.Counter{},
	}
	m.suppressedCooldown = m.suppressed.WithLabelValues("cooldown")
	m.suppressedBudget = m.suppressed.WithLabelValues("budget")
	m.suppressedResolved = m.suppressed.WithLabelValues("resolved")
	m.restored = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_monitor_incidents_restored_total", Help: "Open incidents a starting monitor took over from the alerts topic (firing before a restart).",
	})
	reg.MustRegister(m.restored)
	reg.MustRegister(m.brier, m.ece, m.precision, m.recall, m.labelLag, m.drift, m.segmentAccuracy, m.segmentsDropped, m.covered)
	reg.MustRegister(m.psi, m.auc, m.logLoss, m.version, m.alerts, m.retrains, m.suppressed, m.reports)
	return m
}

func (m *metrics) setAccuracy(a accuracyMetrics) {
	m.auc.Set(a.auc)
	m.logLoss.Set(a.logLoss)
	m.brier.Set(a.brier)
	m.ece.Set(a.ece)
	m.precision.Set(a.precision)
	m.recall.Set(a.recall)
}
