package monitors

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	psi        *prometheus.GaugeVec
	auc        prometheus.Gauge
	logLoss    prometheus.Gauge
	version    prometheus.Gauge
	alerts     *prometheus.CounterVec
	retrains   prometheus.Counter
	suppressed prometheus.Counter
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
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_monitor_model_version", Help: "Champion version being monitored.",
		}),
		alerts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_monitor_alerts_total", Help: "Alerts published, by kind.",
		}, []string{"kind"}),
		retrains: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_monitor_retrain_requests_total", Help: "Retrain requests published.",
		}),
		suppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_monitor_retrain_suppressed_total", Help: "Retrain requests not sent because of the cooldown.",
		}),
	}
	reg.MustRegister(m.psi, m.auc, m.logLoss, m.version, m.alerts, m.retrains, m.suppressed)
	return m
}
