package features

import (
	"math"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// watermarkGauge is the watermark gauge that also remembers its value, so
// the watermark delay can be computed at scrape time against the wall clock.
type watermarkGauge struct {
	prometheus.Gauge
	bits atomic.Uint64
}

func (g *watermarkGauge) Set(v float64) {
	g.bits.Store(math.Float64bits(v))
	g.Gauge.Set(v)
}

// delay is wall now minus the watermark in seconds, 0 before the first one.
func (g *watermarkGauge) delay() float64 {
	w := math.Float64frombits(g.bits.Load())
	if w <= 0 {
		return 0
	}
	return float64(time.Now().UnixMilli())/1000 - w
}

// txnCounts holds the increments of the counters of what a transaction did
// (events, vectors, predictions, labels, dead letters, changelog records)
// until it ends: added when it committed, dropped when it aborted, since an
// aborted batch's inputs are rewound and handled again. Outside a
// transaction (tools and tests that call the stage directly) increments go
// straight to the counters.
type txnCounts struct {
	open     bool
	counters []*txnCounter
}

// begin defers increments until end.
func (t *txnCounts) begin() { t.open = true }

// end adds the deferred increments when committed, else drops them.
func (t *txnCounts) end(committed bool) {
	for _, c := range t.counters {
		if committed && c.pending > 0 {
			c.Counter.Add(c.pending)
		}
		c.pending = 0
	}
	t.open = false
}

func (t *txnCounts) counter(c prometheus.Counter) *txnCounter {
	tc := &txnCounter{Counter: c, txn: t}
	t.counters = append(t.counters, tc)
	return tc
}

func (t *txnCounts) vec(v *prometheus.CounterVec) *txnCounterVec {
	return &txnCounterVec{CounterVec: v, txn: t, by: map[string]*txnCounter{}}
}

// txnCounter is a Prometheus counter whose increments wait for the
// transaction's outcome (txnCounts). It is registered and collected as the
// counter it wraps.
type txnCounter struct {
	prometheus.Counter
	txn     *txnCounts
	pending float64
}

func (c *txnCounter) Inc() { c.Add(1) }

func (c *txnCounter) Add(v float64) {
	if c.txn.open {
		c.pending += v
		return
	}
	c.Counter.Add(v)
}

// txnCounterVec is a counter vector of txnCounters with one label.
type txnCounterVec struct {
	*prometheus.CounterVec
	txn *txnCounts
	by  map[string]*txnCounter
}

// WithLabelValues returns the counter of a label value, created once.
func (v *txnCounterVec) WithLabelValues(lv string) *txnCounter {
	c := v.by[lv]
	if c == nil {
		c = v.txn.counter(v.CounterVec.WithLabelValues(lv))
		v.by[lv] = c
	}
	return c
}

type metrics struct {
	tx          *txnCounts
	events      *txnCounterVec
	dlq         *txnCounterVec
	vectors     *txnCounter
	predictions *txnCounter
	unscored    *txnCounter
	labels      *txnCounterVec
	modelInfo   *prometheus.GaugeVec
	latency     prometheus.Histogram
	watermark   prometheus.Gauge
	misrouted   *txnCounter
	late        *txnCounter
	stateFull   *txnCounter

	txns           *prometheus.CounterVec
	changelog      *txnCounter
	restoreSeconds prometheus.Histogram
	restoreRecords prometheus.Counter
	pausedInputs   prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	tx := &txnCounts{}
	m := &metrics{
		tx: tx,
		events: tx.vec(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_events_total", Help: "Storefront records handled in committed transactions, by input topic.",
		}, []string{"topic"})),
		dlq: tx.vec(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_dlq_total", Help: "Records sent to the dead-letter topic, by rejected field.",
		}, []string{"field"})),
		vectors: tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_vectors_total", Help: "Feature vectors built on trigger events.",
		})),
		predictions: tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_predictions_total", Help: "Vectors scored by the champion.",
		})),
		unscored: tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_unscored_total", Help: "Vectors not scored because the model has no champion yet (cold start).",
		})),
		labels: tx.vec(prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "driftline_features_labels_total", Help: "Labels emitted, by outcome reason.",
		}, []string{"reason"})),
		modelInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_features_model_version", Help: "Champion version being served (0: none).",
		}, []string{"model"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "driftline_features_record_to_prediction_seconds",
			Help:    "Wall time from the input record's broker timestamp to its prediction being produced.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		watermark: &watermarkGauge{Gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "driftline_features_watermark_seconds", Help: "Lowest watermark over assigned partitions at the last session sweep (event time, Unix seconds).",
		})},
		misrouted: tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_misrouted_total", Help: "Storefront records whose Kafka key is not their user_id (processed, but their user's state may be split).",
		})),
		late: tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_features_late_total", Help: "Records older than their partition's watermark (beyond the allowed lateness), sent to the DLQ with reason late.",
		})),
	}
	m.stateFull = tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_features_state_full_total", Help: "Records the window engine rejected because they needed a new key beyond the partition's key budget (max_keys), sent to the DLQ with reason state_full.",
	}))
	reg.MustRegister(m.stateFull)
	m.txns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftline_features_transactions_total",
		Help: "Batches ended, by outcome: committed; aborted (inputs rewound, state of the batch's partitions restored from the changelog); rebalance (aborted before any work because the group rebalanced).",
	}, []string{"outcome"})
	for _, o := range []string{"committed", "aborted", "rebalance"} {
		m.txns.WithLabelValues(o)
	}
	m.changelog = tx.counter(prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_features_changelog_records_total", Help: "State changelog records written: one per key changed in a batch (tombstones included) plus clock records.",
	}))
	m.restoreSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "driftline_features_restore_seconds",
		Help:    "Wall time of each state restore from the changelog (on assignment, after an aborted transaction).",
		Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
	})
	m.restoreRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_features_restore_records_total", Help: "Changelog records read while restoring state.",
	})
	m.pausedInputs = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "driftline_features_paused_inputs",
		Help: "Input topic-partitions whose fetching is paused because their event time runs more than max_input_skew ahead of a lagging input with backlog.",
	})
	reg.MustRegister(m.txns, m.changelog, m.restoreSeconds, m.restoreRecords, m.pausedInputs)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "driftline_features_watermark_delay_seconds", Help: "Wall clock minus the lowest watermark (0 before the first): how far event time lags behind now.",
	}, m.watermark.(*watermarkGauge).delay))
	reg.MustRegister(m.events, m.dlq, m.vectors, m.predictions, m.unscored, m.labels, m.modelInfo, m.latency, m.watermark, m.misrouted, m.late)
	return m
}
