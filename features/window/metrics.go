package window

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's Prometheus series, shared by the engines (one
// per partition) of a process. A nil *Metrics records nothing.
type Metrics struct {
	lateTotal    prometheus.Counter
	fullTotal    prometheus.Counter
	emittedTotal prometheus.Counter
	overflows    prometheus.Counter
	expiredTotal [numEntities]prometheus.Counter
	keysGauge    [numEntities]prometheus.Gauge
}

// NewMetrics registers the engine's series on reg once per process.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lateTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_window_late_events_total",
			Help: "Events rejected because their time was before the partition's watermark.",
		}),
		fullTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_window_full_rejections_total",
			Help: "Events rejected because they needed a new key and the key budget (max_keys) was spent.",
		}),
		emittedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_window_results_total",
			Help: "Window results emitted when the watermark passed their end.",
		}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_window_overflows_total",
			Help: "Contributions to tumbling, hopping or session windows that found no slot in their ring: window data lost because the caller's watermark lagged the newest event time by more than a window's size plus lateness and ring_slack. Must stay 0.",
		}),
	}
	expired := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftline_window_expired_keys_total",
		Help: "Keys dropped after being idle longer than their entity's TTL with every window closed.",
	}, []string{"entity"})
	keys := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "driftline_window_keys",
		Help: "Keys held, by entity.",
	}, []string{"entity"})
	for ent := range numEntities {
		m.expiredTotal[ent] = expired.WithLabelValues(ent.String())
		m.keysGauge[ent] = keys.WithLabelValues(ent.String())
	}
	if reg != nil {
		reg.MustRegister(m.lateTotal, m.fullTotal, m.emittedTotal, m.overflows, expired, keys)
	}
	return m
}

// DeferCounters routes the counters' increments through wrap, which returns
// a counter that stands for the one it is given (collected as it). The
// feature stage passes one that holds increments until its transaction
// commits and drops them when it aborts, since an aborted batch is handled
// again by an engine restored from the changelog. The keys gauge is not
// wrapped: it follows the keys held, which the restore puts back. Call it
// before the engines run.
func (m *Metrics) DeferCounters(wrap func(prometheus.Counter) prometheus.Counter) {
	if m == nil {
		return
	}
	m.lateTotal, m.fullTotal = wrap(m.lateTotal), wrap(m.fullTotal)
	m.emittedTotal, m.overflows = wrap(m.emittedTotal), wrap(m.overflows)
	for ent := range m.expiredTotal {
		m.expiredTotal[ent] = wrap(m.expiredTotal[ent])
	}
}

func (m *Metrics) late() {
	if m != nil {
		m.lateTotal.Inc()
	}
}

func (m *Metrics) full() {
	if m != nil {
		m.fullTotal.Inc()
	}
}

func (m *Metrics) emitted() {
	if m != nil {
		m.emittedTotal.Inc()
	}
}

func (m *Metrics) overflowed() {
	if m != nil {
		m.overflows.Inc()
	}
}

func (m *Metrics) expired(ent Entity) {
	if m != nil {
		m.expiredTotal[ent].Inc()
		m.keysGauge[ent].Dec()
	}
}

func (m *Metrics) keys(ent Entity, d float64) {
	if m != nil {
		m.keysGauge[ent].Add(d)
	}
}
