// Package demo runs the whole Driftline loop on one machine: an embedded
// broker, the features, monitor and trainer roles in-process (assembled by
// internal/app exactly as `driftline run` assembles them), a simulated
// storefront with a shift injected at a chosen event time, and a watcher
// that reads the topics like any subscriber would and prints the timeline.
//
// The run ends when the loop has closed: drift alert, retrain request, a
// new champion live in the scorer, and its labelled accuracy measured. It
// fails if that does not happen within the event-time or wall-time budget.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/chsink"
	"github.com/driftline/driftline/internal/accuracy"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

// Config configures a demo run.
type Config struct {
	Seed              uint64
	Scenario          storefront.Scenario // default "both"
	SessionsPerMinute float64             // default 150
	ShiftAt           time.Duration       // event time of the shift after the start; default 3h
	Speed             time.Duration       // event time per wall second; default 10m
	MaxEventTime      time.Duration       // give up after this much event time; default 12h
	Timeout           time.Duration       // give up after this much wall time; default 170s
	MinRows           int                 // labelled vectors to bootstrap and to retrain; default 2000
	WarmUp            time.Duration       // event time the trainers never train on while user state fills; default 90m
	EvalLabels        int                 // labels of the new champion needed to judge recovery; default 800
	BadEvery          int                 // corrupt every n-th record; default 2000, <0 none
	Listen            string              // broker listener; default 127.0.0.1:0
	MetricsAddr       string              // optional /metrics of the in-process roles
	// ClickHouseDSN, when set, adds the sink role: every topic is copied
	// into ClickHouse (database ClickHouseDatabase, default "driftline"),
	// and the demo ends only once the sink has caught up.
	ClickHouseDSN      string
	ClickHouseDatabase string
	// Out receives the timeline; nil discards it.
	Out io.Writer
}

func (c *Config) setDefaults() {
	if c.Seed == 0 {
		c.Seed = 7
	}
	if c.Scenario == "" {
		c.Scenario = storefront.ScenarioBoth
	}
	if c.SessionsPerMinute == 0 {
		c.SessionsPerMinute = 150
	}
	if c.ShiftAt == 0 {
		c.ShiftAt = 3 * time.Hour
	}
	if c.Speed == 0 {
		c.Speed = 10 * time.Minute
	}
	if c.MaxEventTime == 0 {
		c.MaxEventTime = 12 * time.Hour
	}
	if c.Timeout == 0 {
		c.Timeout = 170 * time.Second
	}
	if c.MinRows == 0 {
		c.MinRows = 2000
	}
	if c.WarmUp == 0 {
		c.WarmUp = 90 * time.Minute
	}
	if c.EvalLabels == 0 {
		c.EvalLabels = 800
	}
	if c.BadEvery == 0 {
		c.BadEvery = 2000
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
}

// Step is one line of the timeline.
type Step struct {
	Wall      float64   `json:"wall_seconds"`
	EventTime time.Time `json:"event_time"`
	What      string    `json:"what"`
}

// Summary is what `driftline demo --json` prints.
type Summary struct {
	LoopClosed         bool    `json:"loop_closed"`
	Events             int     `json:"events"`
	DLQ                int     `json:"dlq"`
	Alerts             int     `json:"alerts"`
	Retrains           int     `json:"retrains"`
	ChampionVersion    int     `json:"champion_version"`
	AUCBeforeShift     float64 `json:"auc_before_shift"`
	AUCAfterShift      float64 `json:"auc_after_shift"`
	AUCAfterRetrain    float64 `json:"auc_after_retrain"`
	LabelsBeforeShift  int     `json:"labels_before_shift"`
	LabelsAfterShift   int     `json:"labels_after_shift"`
	LabelsAfterRetrain int     `json:"labels_after_retrain"`
	// RetrainLoopSeconds is wall time from the first retrain request after
	// the shift to the new champion serving.
	RetrainLoopSeconds float64 `json:"retrain_loop_seconds"`
	WallSeconds        float64 `json:"wall_seconds"`
	Timeline           []Step  `json:"timeline"`
	Reason             string  `json:"reason,omitempty"`
}

// ErrLoopNotClosed is returned when the demo ran out of budget before the
// loop closed.
var ErrLoopNotClosed = errors.New("the loop did not close")

// Run runs the demo. The summary is filled even when it returns an error.
func Run(ctx context.Context, cfg Config, log *slog.Logger) (*Summary, error) {
	cfg.setDefaults()
	d := &run{cfg: cfg, log: log, start: time.Now(), horizon: map[int32]time.Time{}}
	err := d.run(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sum.WallSeconds = round(time.Since(d.start).Seconds())
	return &d.sum, err
}

type run struct {
	cfg   Config
	log   *slog.Logger
	start time.Time
	sim   *storefront.Simulator
	shift time.Time

	mu       sync.Mutex
	sum      Summary
	simNow   time.Time
	firstReq time.Time           // wall time of the first post-shift retrain request
	phase    [3]scored           // before shift (v1), after shift (old champion), new champion
	newChamp int                 // first champion promoted after the shift
	horizon  map[int32]time.Time // labels partition -> latest event time it labelled negative
	complete time.Time           // min over partitions of horizon: every outcome before it is known
}

// scored holds the labelled predictions of one phase. Only labels of the
// complete window count (see complete): the newest labels are mostly
// positives, because a purchase labels a prediction within minutes and a
// negative waits for the horizon.
type scored struct {
	scores, labels []float64
	times          []time.Time
}

func (s *scored) add(score float64, label int, at time.Time) {
	s.scores = append(s.scores, score)
	s.labels = append(s.labels, float64(label))
	s.times = append(s.times, at)
}

// upTo returns the scores and labels of predictions made at or before t.
func (s *scored) upTo(t time.Time) (scores, labels []float64) {
	for i, at := range s.times {
		if !at.After(t) {
			scores = append(scores, s.scores[i])
			labels = append(labels, s.labels[i])
		}
	}
	return scores, labels
}

func (d *run) step(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := Step{Wall: round(time.Since(d.start).Seconds()), EventTime: d.simNow, What: fmt.Sprintf(format, args...)}
	d.sum.Timeline = append(d.sum.Timeline, s)
	fmt.Fprintf(d.cfg.Out, "%7.1fs  %s  %s\n", s.Wall, s.EventTime.Format("15:04"), s.What)
}

func (d *run) run(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()

	sim, err := storefront.New(storefront.Config{
		Seed: d.cfg.Seed, SessionsPerMinute: d.cfg.SessionsPerMinute,
		Scenario: d.cfg.Scenario, ShiftAt: d.cfg.ShiftAt,
	})
	if err != nil {
		return fmt.Errorf("cannot create simulator: %w", err)
	}
	d.sim = sim
	d.simNow = sim.Now()
	d.shift = sim.Now().Add(d.cfg.ShiftAt)

	broker, err := consumers.NewBroker(consumers.BrokerConfig{Listen: d.cfg.Listen}, d.log)
	if err != nil {
		return err
	}
	defer broker.Close()
	d.step("embedded broker up at %s; storefront simulated from %s, %s shift at %s",
		broker.Addr(), sim.Now().Format("15:04"), d.cfg.Scenario, d.shift.Format("15:04"))

	kcfg := consumers.KafkaConfig{Brokers: []string{broker.Addr()}}
	kcfg.SetDefaults()
	proc, err := app.New(app.Config{
		Kafka: kcfg, Roles: d.roles(), Provision: true, MetricsAddr: d.cfg.MetricsAddr,
		Sink:    chsink.Config{DSN: d.cfg.ClickHouseDSN, Database: d.cfg.ClickHouseDatabase},
		Trainer: trainers.Config{MinRows: d.cfg.MinRows, WarmUp: d.cfg.WarmUp, DataWait: 2 * time.Minute},
	}, d.log, nil)
	if err != nil {
		return err
	}
	if err := consumers.ProvisionTopics(ctx, kcfg, d.log); err != nil {
		return err
	}

	roles, stopRoles := context.WithCancel(context.Background())
	defer stopRoles()
	procDone := make(chan error, 1)
	go func() { procDone <- proc.Run(roles) }()

	g, gctx := errgroup.WithContext(ctx)
	closed := make(chan struct{})
	g.Go(func() error { return d.watch(gctx, kcfg, proc, closed) })
	g.Go(func() error { return d.produce(gctx, kcfg, closed) })
	err = g.Wait()
	if serr := d.drainSink(kcfg, proc); serr != nil && err == nil {
		err = serr
	}
	stopRoles()
	if perr := <-procDone; perr != nil && err == nil {
		err = perr
	}
	d.finish()
	if d.sum.LoopClosed {
		return nil
	}
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: %s", ErrLoopNotClosed, d.sum.Reason)
	}
	return err
}

// produce runs the storefront until the loop closes or event time runs out.
func (d *run) produce(ctx context.Context, kcfg consumers.KafkaConfig, closed <-chan struct{}) error {
	cl, err := kgo.NewClient(kcfg.Opts(d.log, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(50_000))...)
	if err != nil {
		return fmt.Errorf("cannot create storefront producer: %w", err)
	}
	defer cl.Close()
	prod := NewProducer(cl, kcfg.Topics, Pace{Speed: d.cfg.Speed, BadEvery: d.cfg.BadEvery})
	end := d.sim.Now().Add(d.cfg.MaxEventTime)
	announced := false
	for d.sim.Now().Before(end) {
		select {
		case <-closed:
			return cl.Flush(ctx)
		default:
		}
		next := d.sim.Now().Add(10 * time.Minute)
		if err := prod.Advance(ctx, d.sim, next); err != nil {
			return err
		}
		n, _ := prod.Produced()
		d.mu.Lock()
		d.simNow = d.sim.Now()
		d.sum.Events = n
		d.mu.Unlock()
		if !announced && !d.sim.Now().Before(d.shift) {
			announced = true
			d.step("shift injected (%s): prices x1.8, traffic to mobile and social, conversion behaviour changed", d.cfg.Scenario)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	d.mu.Lock()
	d.sum.Reason = fmt.Sprintf("event-time budget of %s spent", d.cfg.MaxEventTime)
	d.mu.Unlock()
	return ErrLoopNotClosed
}

// watch reads alerts, retrain requests, the registry and labels, and
// decides when the loop has closed.
func (d *run) watch(ctx context.Context, kcfg consumers.KafkaConfig, proc *app.Process, closed chan<- struct{}) error {
	t := kcfg.Topics
	cl, err := kgo.NewClient(kcfg.Opts(d.log,
		kgo.ConsumeTopics(t.Alerts, t.Retrain, t.Models, t.Labels, t.DLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create watcher: %w", err)
	}
	defer cl.Close()
	served, measured := 0, false
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		fetches.EachRecord(func(r *kgo.Record) { d.observe(t, r) })
		v := proc.Features().Scorer().Version()
		if v != served {
			served = v
			d.step("scorer hot-swapped to v%d", v)
		}
		// The scorer may swap (on the registry feed's goroutine) before
		// this loop has read the alias record: measure once both are seen.
		d.mu.Lock()
		loop := 0.0
		if !measured && d.newChamp != 0 && served >= d.newChamp {
			measured = true
			loop = time.Since(d.firstReq).Seconds()
			d.sum.RetrainLoopSeconds = round(loop)
		}
		d.mu.Unlock()
		if loop > 0 {
			d.step("new champion v%d live in the scorer %.1fs after the retrain request", served, loop)
		}
		if d.closed() {
			close(closed)
			return nil
		}
	}
}

func (d *run) observe(t consumers.Topics, r *kgo.Record) {
	switch r.Topic {
	case t.DLQ:
		d.mu.Lock()
		d.sum.DLQ++
		first := d.sum.DLQ == 1
		d.mu.Unlock()
		if first {
			d.step("dead-letter: %s (source %s/%s@%s; bad records are kept, the pipeline goes on)",
				consumers.Header(r, schemas.HeaderReason), consumers.Header(r, schemas.HeaderSourceTopic),
				consumers.Header(r, schemas.HeaderSourcePartition), consumers.Header(r, schemas.HeaderSourceOffset))
		}
	case t.Alerts:
		var a schemas.Alert
		if json.Unmarshal(r.Value, &a) != nil {
			return
		}
		what := a.Statistic
		if a.Feature != "" {
			what = a.Statistic + "(" + a.Feature + ")"
		}
		if a.Segment != "" {
			what += " [" + a.Segment + "]"
		}
		if a.Status == schemas.AlertResolved {
			d.step("resolved %s on %s/v%d: %s = %.3f, threshold %.3f over %d samples", a.Kind, a.Model, a.Version, what, a.Value, a.Threshold, a.Samples)
			return
		}
		d.mu.Lock()
		d.sum.Alerts++
		d.mu.Unlock()
		d.step("ALERT %s on %s/v%d: %s = %.3f, threshold %.3f over %d samples", a.Kind, a.Model, a.Version, what, a.Value, a.Threshold, a.Samples)
	case t.Retrain:
		var q schemas.RetrainRequest
		if json.Unmarshal(r.Value, &q) != nil {
			return
		}
		d.mu.Lock()
		d.sum.Retrains++
		if q.Reason != "bootstrap" && d.firstReq.IsZero() && !q.DataFrom.Before(d.shift) {
			d.firstReq = time.Now()
		}
		d.mu.Unlock()
		d.step("retrain requested: %s (reason %s, train on data from %s)", q.IdempotencyKey, q.Reason, fmtTime(q.DataFrom))
	case t.Models:
		var rec schemas.RegistryRecord
		if json.Unmarshal(r.Value, &rec) != nil {
			return
		}
		switch {
		case rec.Version != nil:
			v := rec.Version
			gate := v.Metrics.GateReason
			d.step("v%d trained on %d labelled vectors (%s to %s): holdout AUC %.3f; gate %s: %s",
				v.Version, v.Rows, v.Training.From.Format("15:04"), v.Training.To.Format("15:04"), v.Metrics.AUC, passFail(v.Metrics.GatePassed), gate)
		case rec.Alias != nil:
			a := rec.Alias
			decision := ""
			if a.Decision != "" {
				decision = fmt.Sprintf(" (%s, move %d)", a.Decision, a.Seq)
			}
			switch a.Alias {
			case schemas.AliasReserved, schemas.AliasChallenger, schemas.AliasRetired:
				return // bookkeeping moves, listed by `driftline models history`
			}
			if a.Alias != schemas.AliasChampion {
				d.step("registry: %s of %s moved v%d -> v%d%s: %s", a.Alias, a.Model, a.Previous, a.Version, decision, a.Reason)
				return
			}
			d.mu.Lock()
			d.sum.ChampionVersion = a.Version
			if !d.firstReq.IsZero() && d.newChamp == 0 {
				d.newChamp = a.Version
			}
			d.mu.Unlock()
			d.step("registry: champion of %s moved v%d -> v%d%s", a.Model, a.Previous, a.Version, decision)
		}
	case t.Labels:
		var l schemas.Label
		if json.Unmarshal(r.Value, &l) != nil {
			return
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if h, seen := d.horizon[r.Partition]; !seen || (l.Reason == schemas.LabelReasonHorizon && l.EventTime.After(h)) {
			if l.Reason == schemas.LabelReasonHorizon {
				h = l.EventTime
			}
			d.horizon[r.Partition] = h
			d.complete = slices.MinFunc(slices.Collect(maps.Values(d.horizon)), time.Time.Compare)
		}
		if l.Version == 0 {
			return
		}
		var ph *scored
		switch {
		case d.newChamp != 0 && l.Version >= d.newChamp:
			ph = &d.phase[2]
		case l.EventTime.Before(d.shift):
			ph = &d.phase[0]
		default:
			ph = &d.phase[1]
		}
		if ph != nil {
			ph.add(l.Score, l.Label, l.EventTime)
		}
	}
}

// closed reports whether the loop has closed: a post-shift retrain made a
// new champion and enough of its predictions are labelled to judge it.
func (d *run) closed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, labels := d.phase[2].upTo(d.complete)
	return d.newChamp != 0 && len(labels) >= d.cfg.EvalLabels
}

func (d *run) finish() {
	d.mu.Lock()
	s := &d.sum
	aucs := [3]*float64{&s.AUCBeforeShift, &s.AUCAfterShift, &s.AUCAfterRetrain}
	counts := [3]*int{&s.LabelsBeforeShift, &s.LabelsAfterShift, &s.LabelsAfterRetrain}
	for i := range d.phase {
		scores, labels := d.phase[i].upTo(d.complete)
		*counts[i] = len(labels)
		*aucs[i] = round(accuracy.AUC(scores, labels))
		if math.IsNaN(*aucs[i]) {
			*aucs[i] = 0
		}
	}
	recovered := s.AUCAfterRetrain > s.AUCAfterShift
	// A champion rolled back below the post-shift retrain (probation) does
	// not close the loop: the model serving at the end must be a new one.
	current := d.newChamp != 0 && s.ChampionVersion >= d.newChamp
	s.LoopClosed = current && s.Alerts > 0 && s.LabelsAfterRetrain >= d.cfg.EvalLabels && recovered
	if !s.LoopClosed && s.Reason == "" {
		switch {
		case s.Alerts == 0:
			s.Reason = "no alert fired"
		case d.newChamp == 0:
			s.Reason = "no new champion after the shift"
		case !current:
			s.Reason = fmt.Sprintf("the champion at the end is v%d, older than v%d, the first one after the shift (rolled back)", s.ChampionVersion, d.newChamp)
		case !recovered:
			s.Reason = fmt.Sprintf("accuracy did not recover: AUC %.3f after retrain vs %.3f after the shift", s.AUCAfterRetrain, s.AUCAfterShift)
		default:
			s.Reason = fmt.Sprintf("only %d complete labels of the new champion (need %d)", s.LabelsAfterRetrain, d.cfg.EvalLabels)
		}
	}
	d.mu.Unlock()
	if s.LoopClosed {
		d.step("loop closed: AUC %.3f before the shift, %.3f after it, %.3f after the retrain (v%d)",
			s.AUCBeforeShift, s.AUCAfterShift, s.AUCAfterRetrain, s.ChampionVersion)
	} else {
		d.step("loop NOT closed: %s", s.Reason)
	}
}

func passFail(ok bool) string {
	if ok {
		return "PASSED"
	}
	return "REJECTED"
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "the start"
	}
	return t.Format("15:04")
}

func round(v float64) float64 { return math.Round(v*1000) / 1000 }
