package features

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	events      *prometheus.CounterVec
	dlq         *prometheus.CounterVec
	vectors     prometheus.Counter
	predictions prometheus.Counter
	unscored    prometheus.Counter
	labels      *prometheus.CounterVec
	modelInfo   *prometheus.GaugeVec
	latency     prometheus.Histogram
	watermark   prometheus.Gauge
	misrouted   prometheus.Counter
	late        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_events_total", Help: "Storefront records read, by input topic.",
		}, []string{"topic"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_dlq_total", Help: "Records sent to the dead-letter topic, by rejected field.",
		}, []string{"field"}),
		vectors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_vectors_total", Help: "Feature vectors built on trigger events.",
		}),
		predictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_predictions_total", Help: "Vectors scored by the champion.",
		}),
		unscored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_unscored_total", Help: "Vectors not scored because the model has no champion yet (cold start).",
		}),
		labels: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_labels_total", Help: "Labels emitted, by outcome reason.",
		}, []string{"reason"}),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_features_model_version", Help: "Champion version being served (0: none).",
		}, []string{"model"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "driftline_features_record_to_prediction_seconds",
			Help:    "Wall time from the input record's broker timestamp to its prediction being produced.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		watermark: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_features_watermark_seconds", Help: "Lowest watermark over assigned partitions at the last session sweep (event time, Unix seconds).",
		}),
		misrouted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_misrouted_total", Help: "Storefront records whose Kafka key is not their user_id (processed, but their user's state may be split).",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_late_total", Help: "Records older than their partition's watermark (beyond the allowed lateness), sent to the DLQ with reason late.",
		}),
	}
	reg.MustRegister(m.events, m.dlq, m.vectors, m.predictions, m.unscored, m.labels, m.modelInfo, m.latency, m.watermark, m.misrouted, m.late)
	return m
}
