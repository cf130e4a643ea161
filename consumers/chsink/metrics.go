package chsink

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	rows        *prometheus.CounterVec
	batchRows   *prometheus.HistogramVec
	insertSecs  *prometheus.HistogramVec
	errors      *prometheus.CounterVec
	deadLetters prometheus.Counter
	skipped     *prometheus.CounterVec
	failing     prometheus.Gauge
	commits     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_sink_rows_total",
			Help: "Rows ClickHouse acknowledged, by table.",
		}, []string{"table"}),
		batchRows: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "driftline_sink_batch_rows",
			Help:    "Rows per INSERT batch, by table.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}, []string{"table"}),
		insertSecs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "driftline_sink_insert_seconds",
			Help:    "Latency of one successful INSERT batch, by table.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}, []string{"table"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_sink_insert_errors_total",
			Help: "Failed INSERT attempts, by table; each is retried with backoff.",
		}, []string{"table"}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_sink_dead_letters_total",
			Help: "Derived records the sink could not decode, sent to the DLQ.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_sink_skipped_total",
			Help: "Records not written, by reason (invalid: storefront records the feature stage dead-letters).",
		}, []string{"reason"}),
		failing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_sink_failing",
			Help: "1 while a batch is being retried after ClickHouse failed (fetching is paused, lag grows).",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_sink_commits_total",
			Help: "Offset commits after every pending batch was acknowledged.",
		}),
	}
	reg.MustRegister(m.rows, m.batchRows, m.insertSecs, m.errors, m.deadLetters, m.skipped, m.failing, m.commits)
	for _, t := range allTables {
		m.rows.WithLabelValues(t)
		m.errors.WithLabelValues(t)
	}
	m.skipped.WithLabelValues("invalid")
	return m
}

var allTables = []string{
	TableEvents, TableFeatures, TablePredictions, TableLabels, TableWindows, TableAlerts, TableReports,
	TableRetrainRequests, TableModelVersions, TableModelAliases, TableDeadLetters,
}
