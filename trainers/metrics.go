package trainers

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	buffered     prometheus.Gauge
	versions     prometheus.Counter
	promotions   prometheus.Counter
	gateRejected prometheus.Counter
	duplicates   prometheus.Counter
	trainSeconds prometheus.Histogram
	running      prometheus.Gauge
	// datasets counts training sets by source; dataFallbacks those taken
	// from the replay because ClickHouse was configured but down or
	// lagging.
	datasetsCH, datasetsReplay prometheus.Counter
	dataFallbacks              prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		buffered: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_trainer_buffered_labels", Help: "Labelled vectors held for training.",
		}),
		versions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_trainer_versions_total", Help: "Model versions trained and published.",
		}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_trainer_promotions_total", Help: "Versions that passed the gate and became champion.",
		}),
		gateRejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_trainer_gate_rejected_total", Help: "Challengers the gate kept from becoming champion.",
		}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_trainer_duplicate_requests_total", Help: "Retrain requests skipped because their idempotency key was already trained.",
		}),
		trainSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "driftline_trainer_train_seconds", Help: "Wall time to train and gate one challenger.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
	}
	m.running = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "driftline_trainer_trainings_running", Help: "Trainings running now (at most max_concurrent per worker).",
	})
	datasets := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftline_trainer_datasets_total", Help: "Training sets built, by source (clickhouse, labels-topic).",
	}, []string{"source"})
	m.datasetsCH, m.datasetsReplay = datasets.WithLabelValues(SourceClickHouse), datasets.WithLabelValues(SourceLabelsTopic)
	m.dataFallbacks = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_trainer_dataset_fallbacks_total", Help: "Training sets replayed from the labels topic because ClickHouse was configured but down or lagging.",
	})
	reg.MustRegister(datasets, m.dataFallbacks, m.buffered, m.versions, m.promotions, m.gateRejected, m.duplicates, m.trainSeconds, m.running)
	return m
}
