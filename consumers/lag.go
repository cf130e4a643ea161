package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"
)

// ClientMetricsNamespace prefixes franz-go's client metrics (kprom), e.g.
// driftline_kafka_produce_bytes_total.
const ClientMetricsNamespace = "driftline_kafka"

// ClientMetrics gives every Kafka client of a process franz-go's kprom
// metrics on the process registry. A kprom.Metrics serves one client (it
// registers its collectors when the client starts and unregisters them when
// it closes), and a process runs several, so each client gets its own,
// labelled client="<name>": the name given to NamedClientOptions, else the
// consumer group, else the first consumed topic, else "producer"; a second
// client with the same name gets "-2", and so on. One option slice reused
// for several clients (Watermill's subscriber builds two) shares one set of
// series under the first client's name, removed when the last one closes.
type ClientMetrics struct {
	reg prometheus.Registerer

	mu   sync.Mutex
	used map[string]bool
}

// NewClientMetrics returns client metrics registered on reg.
func NewClientMetrics(reg prometheus.Registerer) *ClientMetrics {
	return &ClientMetrics{reg: reg, used: map[string]bool{}}
}

// hook returns the hook for one new client; name may be empty.
func (m *ClientMetrics) hook(name string) kgo.Hook {
	r := &clientRegisterer{owner: m}
	return &clientHook{Metrics: kprom.NewMetrics(ClientMetricsNamespace, kprom.Registerer(r)), reg: r, name: name}
}

func (m *ClientMetrics) claim(base string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	name := base
	for i := 2; m.used[name]; i++ {
		name = base + "-" + strconv.Itoa(i)
	}
	m.used[name] = true
	return name
}

func (m *ClientMetrics) release(name string) {
	m.mu.Lock()
	delete(m.used, name)
	m.mu.Unlock()
}

// clientHook is kprom's hook with the client's name decided when the client
// starts.
type clientHook struct {
	*kprom.Metrics
	reg  *clientRegisterer
	name string

	mu      sync.Mutex
	clients int // clients started with this hook and not closed
}

func (h *clientHook) OnNewClient(cl *kgo.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients++; h.clients > 1 {
		return // a shared option slice: count it with the first client
	}
	name := h.reg.owner.claim(clientName(cl, h.name))
	h.reg.set(prometheus.WrapRegistererWith(prometheus.Labels{"client": name}, h.reg.owner.reg), name)
	h.Metrics.OnNewClient(cl)
}

// clientName is the given name, else the client's consumer group, else its
// first consumed topic, else "producer".
func clientName(cl *kgo.Client, given string) string {
	if given != "" {
		return given
	}
	if g, _ := cl.OptValue(kgo.ConsumerGroup).(string); g != "" {
		return g
	}
	if ts, _ := cl.OptValue(kgo.ConsumeTopics).([]string); len(ts) > 0 {
		return ts[0]
	}
	return "producer"
}

func (h *clientHook) OnClientClosed(cl *kgo.Client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.clients--; h.clients > 0 {
		return
	}
	h.Metrics.OnClientClosed(cl)
	h.reg.owner.release(h.reg.name)
}

// clientRegisterer forwards to the labelled registerer chosen in
// OnNewClient; kprom registers nothing before that.
type clientRegisterer struct {
	owner *ClientMetrics
	mu    sync.Mutex
	inner prometheus.Registerer
	name  string
}

func (r *clientRegisterer) set(inner prometheus.Registerer, name string) {
	r.mu.Lock()
	r.inner, r.name = inner, name
	r.mu.Unlock()
}

func (r *clientRegisterer) get() prometheus.Registerer {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inner == nil {
		return prometheus.NewRegistry() // not started: metrics go nowhere
	}
	return r.inner
}

func (r *clientRegisterer) Register(c prometheus.Collector) error { return r.get().Register(c) }
func (r *clientRegisterer) MustRegister(cs ...prometheus.Collector) {
	// A clash (two clients under one name cannot happen: names are
	// claimed) must not take the process down: log-free, the client just
	// goes unmeasured.
	for _, c := range cs {
		_ = r.get().Register(c)
	}
}
func (r *clientRegisterer) Unregister(c prometheus.Collector) bool { return r.get().Unregister(c) }

// LagConfig configures the consumer-lag poller.
type LagConfig struct {
	// Groups whose lag is reported (the groups of the roles this process
	// runs).
	Groups []string `yaml:"groups"`
	// Interval between polls. Default 15s, one Prometheus scrape.
	Interval time.Duration `yaml:"interval"`
}

func (c *LagConfig) setDefaults() {
	if c.Interval <= 0 {
		c.Interval = 15 * time.Second
	}
}

// Validate reports a config that cannot work.
func (c *LagConfig) Validate() error {
	if len(c.Groups) == 0 {
		return fmt.Errorf("lag: at least one consumer group is required")
	}
	return nil
}

// LagMonitor reports consumer lag per group, topic and partition (the log
// end offset minus the group's committed offset, from kadm) as
// driftline_consumer_lag. It polls on an interval rather than at scrape
// time so a slow broker never stalls /metrics. Every replica of a role
// reports the whole group's lag: aggregate with max by (group, topic,
// partition), not sum.
type LagMonitor struct {
	cfg   LagConfig
	kafka KafkaConfig
	log   *slog.Logger
	m     *lagMetrics
	// seen holds the label sets set by the last poll, to delete partitions
	// that disappeared (a deleted topic, a group that stopped committing).
	seen map[[3]string]bool
}

type lagMetrics struct {
	lag    *prometheus.GaugeVec
	polls  prometheus.Counter
	errors prometheus.Counter
}

func newLagMetrics(reg prometheus.Registerer) *lagMetrics {
	m := &lagMetrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "driftline_consumer_lag", Help: "Records a consumer group has yet to commit on a partition (log end offset minus committed offset).",
		}, []string{"group", "topic", "partition"}),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_consumer_lag_polls_total", Help: "Consumer lag polls made.",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "driftline_consumer_lag_errors_total", Help: "Consumer lag polls or groups that failed (the previous values stay).",
		}),
	}
	reg.MustRegister(m.lag, m.polls, m.errors)
	return m
}

// NewLagMonitor returns a poller for cfg.Groups.
func NewLagMonitor(cfg LagConfig, kafka KafkaConfig, log *slog.Logger, reg prometheus.Registerer) (*LagMonitor, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LagMonitor{cfg: cfg, kafka: kafka, log: log, m: newLagMetrics(reg), seen: map[[3]string]bool{}}, nil
}

// Run polls until ctx ends.
func (l *LagMonitor) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(l.kafka.Opts(l.log)...)
	if err != nil {
		return fmt.Errorf("cannot create lag client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(l.cfg.Interval)
	defer t.Stop()
	for {
		l.Poll(ctx, adm)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the lag of every group once and updates the gauges.
func (l *LagMonitor) Poll(ctx context.Context, adm *kadm.Client) {
	pctx, cancel := context.WithTimeout(ctx, l.cfg.Interval)
	defer cancel()
	l.m.polls.Inc()
	lags, err := adm.Lag(pctx, l.cfg.Groups...)
	if err != nil {
		if ctx.Err() == nil {
			l.m.errors.Inc()
			l.log.Warn("cannot read consumer lag", "err", err)
		}
		return
	}
	now := map[[3]string]bool{}
	lags.Each(func(g kadm.DescribedGroupLag) {
		if err := g.Error(); errors.Is(err, kerr.GroupIDNotFound) {
			// Not joined yet (a process's first poll) or never committed:
			// no lag to report, nothing wrong.
			return
		} else if err != nil {
			l.m.errors.Inc()
			l.log.Warn("cannot read consumer lag", "group", g.Group, "err", err)
			for k := range l.seen { // keep the group's last values
				if k[0] == g.Group {
					now[k] = true
				}
			}
			return
		}
		for _, ml := range g.Lag.Sorted() {
			if ml.Err != nil || ml.Lag < 0 {
				continue
			}
			k := [3]string{g.Group, ml.Topic, strconv.Itoa(int(ml.Partition))}
			l.m.lag.WithLabelValues(k[:]...).Set(float64(ml.Lag))
			now[k] = true
		}
	})
	for k := range l.seen {
		if !now[k] {
			l.m.lag.DeleteLabelValues(k[:]...)
		}
	}
	l.seen = now
}
