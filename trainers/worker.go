package trainers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/schemas"
)

// Config configures the trainer role.
type Config struct {
	// Model is the model trained. Default "purchase_propensity".
	Model string `yaml:"model"`
	// Features are the names of the vector's values, in order; they are
	// recorded with every version and must match what scorers build.
	Features []string `yaml:"features"`
	// MinRows labelled vectors are needed to bootstrap v1 and to train a
	// retrain request's challenger. Default 2000.
	MinRows int `yaml:"min_rows"`
	// BufferRows is how many recent labelled vectors are kept. Default 200000.
	BufferRows int `yaml:"buffer_rows"`
	// DataWait is how long a retrain request waits for MinRows labelled
	// vectors newer than its DataFrom before it fails (and is retried, then
	// poisoned). Default 10m.
	DataWait time.Duration `yaml:"data_wait"`
	// BootstrapRetry is how long the cold-start watch waits for a
	// champion after requesting the bootstrap before it asks again.
	// Default 2m.
	BootstrapRetry time.Duration `yaml:"bootstrap_retry"`
	// WarmUp: labelled vectors served within this much event time of the
	// first one are never trained on. A feature stage that starts on a live
	// stream has no user history yet, so its first vectors describe
	// newcomers only; a bootstrap model and reference profile built on them
	// would see drift as soon as the state fills. Default 0.
	WarmUp time.Duration `yaml:"warm_up"`
	// Train is how challengers are trained and gated.
	Train TrainConfig `yaml:"train"`
	// Backend is "cpu" (default: the Go trainer) or "gpu": hand the
	// training set to GPU.Command through the trainer contract when
	// GPU.Probe succeeds at start, else train on the CPU. The backend that
	// trained is recorded on each version.
	Backend string `yaml:"backend"`
	// GPU is the contract trainer the "gpu" backend runs.
	GPU GPUConfig `yaml:"gpu"`
	// MaxConcurrent is how many trainings one worker runs at once; further
	// requests wait. Default 1.
	MaxConcurrent int `yaml:"max_concurrent"`
	// Shadow and Probation decide what happens after the gate (see
	// ShadowConfig); the Shadow component runs them.
	Shadow ShadowConfig `yaml:"shadow"`
	// ClaimTTL is how long a replica's claim on a retrain request (its
	// version-number reservation, see Registry.Reserve) keeps other
	// replicas from training the same request: they wait for its version
	// until then, and train it themselves after (the claimant died).
	// Longer than the longest training. Default 15m.
	ClaimTTL time.Duration `yaml:"claim_ttl"`
	// ClickHouse, when its DSN is set (`driftline run --clickhouse`, the
	// sink's flag), is where training sets are read from: the labels table
	// the sink writes (ClickHouseSource). The labels-topic replay still
	// decides when enough labelled vectors exist and where the window
	// ends; ClickHouse supplies the rows once it holds every row the
	// replay has, else, after ClickHouse.Wait, the replay's rows are used
	// (see trainingSet).
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
}

// Trainer backends (Config.Backend).
const (
	BackendNameCPU = "cpu"
	BackendNameGPU = "gpu"
)

// GPUConfig is the contract trainer of the "gpu" backend.
type GPUConfig struct {
	// Command and its leading arguments; the worker appends --data, --out
	// and --l2. Default ["python3", "trainers/gpu/train.py"].
	Command []string `yaml:"command"`
	// Probe must exit 0 for the GPU backend to be used. Default
	// ["nvidia-smi", "-L"].
	Probe []string `yaml:"probe"`
	// Timeout for one training. Default 10m.
	Timeout time.Duration `yaml:"timeout"`
}

func (c *Config) setDefaults() {
	if c.Model == "" {
		c.Model = "purchase_propensity"
	}
	if c.MinRows == 0 {
		c.MinRows = 2000
	}
	if c.BufferRows == 0 {
		c.BufferRows = 200_000
	}
	if c.DataWait == 0 {
		c.DataWait = 10 * time.Minute
	}
	if c.BootstrapRetry == 0 {
		c.BootstrapRetry = 2 * time.Minute
	}
	c.Train.setDefaults()
	if c.Backend == "" {
		c.Backend = BackendNameCPU
	}
	if len(c.GPU.Command) == 0 {
		c.GPU.Command = []string{"python3", "trainers/gpu/train.py"}
	}
	if len(c.GPU.Probe) == 0 {
		c.GPU.Probe = []string{"nvidia-smi", "-L"}
	}
	if c.GPU.Timeout == 0 {
		c.GPU.Timeout = 10 * time.Minute
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 1
	}
	if c.ClaimTTL == 0 {
		c.ClaimTTL = 15 * time.Minute
	}
	c.Shadow.setDefaults()
	c.ClickHouse.setDefaults()
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	switch {
	case len(c.Features) == 0:
		return fmt.Errorf("trainer: features are required")
	case c.MinRows < 100:
		return fmt.Errorf("trainer: min_rows must be >= 100, got %d", c.MinRows)
	case c.BufferRows < c.MinRows:
		return fmt.Errorf("trainer: buffer_rows (%d) must be >= min_rows (%d)", c.BufferRows, c.MinRows)
	case c.Train.HoldoutFraction <= 0 || c.Train.HoldoutFraction >= 0.9:
		return fmt.Errorf("trainer: holdout_fraction must be in (0, 0.9), got %g", c.Train.HoldoutFraction)
	case c.Train.Bins < 2 || c.Train.Bins > 255:
		return fmt.Errorf("trainer: bins must be 2..255 (monitors keep bin indices in a byte), got %d", c.Train.Bins)
	case c.Backend != BackendNameCPU && c.Backend != BackendNameGPU:
		return fmt.Errorf("trainer: backend must be %q or %q, got %q", BackendNameCPU, BackendNameGPU, c.Backend)
	case c.MaxConcurrent < 1:
		return fmt.Errorf("trainer: max_concurrent must be >= 1, got %d", c.MaxConcurrent)
	case c.ClaimTTL < time.Second:
		return fmt.Errorf("trainer: claim_ttl must be >= 1s, got %s", c.ClaimTTL)
	}
	return c.Shadow.Validate()
}

// reasonBootstrap is the reason of the retrain requests that train v1.
const reasonBootstrap = "bootstrap"

// recoverAfter is how long a redelivered request whose version passed the
// gate waits for the alias move that follows before writing it itself.
const recoverAfter = 20 * time.Second

// errPermanent marks a handler error that no retry can fix.
var errPermanent = errors.New("not retryable")

// Worker is the running trainer role.
type Worker struct {
	cfg   Config
	kafka consumers.KafkaConfig
	feed  *consumers.ModelFeed
	pub   message.Publisher
	sub   message.Subscriber
	log   *slog.Logger
	m     *metrics
	buf   *labelBuffer
	reg   *Registry
	sem   chan struct{} // one token per training running

	backend Backend           // chosen in Run
	ch      *ClickHouseSource // nil: training sets from the labels-topic replay only
	id      string            // this replica, in its version-number reservations

	mu   sync.Mutex
	done map[string]bool // idempotency keys handled by this process
}

// New builds the worker. feed must be run by the caller; sub consumes
// retrain requests (in the trainers' consumer group) and pub writes the
// registry, the poison queue and bootstrap requests.
func New(cfg Config, kafka consumers.KafkaConfig, feed *consumers.ModelFeed, pub message.Publisher, sub message.Subscriber, log *slog.Logger, reg prometheus.Registerer) (*Worker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var ch *ClickHouseSource
	if cfg.ClickHouse.DSN != "" {
		var err error
		if ch, err = NewClickHouseSource(cfg.ClickHouse); err != nil {
			return nil, err
		}
	}
	return &Worker{
		ch:  ch,
		cfg: cfg, kafka: kafka, feed: feed, pub: pub, sub: sub,
		log:     log.With("role", "trainer"),
		m:       newMetrics(reg),
		buf:     newLabelBuffer(cfg.BufferRows),
		reg:     NewRegistry(feed, pub, kafka.Topics.Models),
		sem:     make(chan struct{}, cfg.MaxConcurrent),
		backend: CPU{},
		id:      "trainer-" + watermill.NewShortUUID(),
		done:    map[string]bool{},
	}, nil
}

// Run runs the label replay, the bootstrap watch and the router until ctx
// ends.
func (w *Worker) Run(ctx context.Context) error {
	if w.ch != nil {
		defer w.ch.Close()
		w.log.Info("training sets from ClickHouse, the labels-topic replay as fallback", "database", w.cfg.ClickHouse.Database, "wait", w.cfg.ClickHouse.Wait)
	}
	select {
	case <-w.feed.Ready():
	case <-ctx.Done():
		return nil
	}
	w.backend = w.pickBackend(ctx)
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, watermill.NewSlogLogger(w.log))
	if err != nil {
		return fmt.Errorf("cannot create trainer router: %w", err)
	}
	// A request interrupted by shutdown is not poison: it is nacked and
	// redelivered to whichever trainer runs next.
	poison, err := middleware.PoisonQueueWithFilter(w.pub, w.kafka.Topics.RetrainPoison(), func(err error) bool {
		return !errors.Is(err, context.Canceled)
	})
	if err != nil {
		return fmt.Errorf("cannot create poison queue: %w", err)
	}
	// Outermost first: a request that still fails after the retries goes
	// to the poison queue; a panic becomes an error the retry sees.
	router.AddMiddleware(
		poison,
		middleware.Retry{
			MaxRetries: 3, InitialInterval: time.Second, MaxInterval: 10 * time.Second, Multiplier: 2,
			// A request that cannot be decoded never will be: straight to
			// the poison queue.
			ShouldRetry: func(p middleware.RetryParams) bool {
				return !errors.Is(p.Err, errPermanent) && !errors.Is(p.Err, context.Canceled)
			},
			Logger: watermill.NewSlogLogger(w.log),
		}.Middleware,
		middleware.Recoverer,
	)
	router.AddConsumerHandler("trainer", w.kafka.Topics.Retrain, w.sub, w.handle)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.replayLabels(ctx) })
	g.Go(func() error { return w.watchColdStart(ctx) })
	g.Go(func() error { return router.Run(ctx) })
	return g.Wait()
}

// replayLabels reads every partition of the labels topic from its start,
// outside any consumer group, into the buffer.
func (w *Worker) replayLabels(ctx context.Context) error {
	cl, err := kgo.NewClient(w.kafka.Opts(w.log,
		kgo.ConsumeTopics(w.kafka.Topics.Labels),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create label replay client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			w.log.Warn("label fetch failed", "topic", t, "partition", p, "err", err)
		})
		fetches.EachRecord(func(r *kgo.Record) {
			var l schemas.Label
			if err := json.Unmarshal(r.Value, &l); err != nil {
				w.log.Error("cannot decode label; skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if l.Model == w.cfg.Model && len(l.Values) == len(w.cfg.Features) {
				w.buf.add(l, r.Partition)
			}
		})
		w.m.buffered.Set(float64(w.buf.len()))
	}
}

// watchColdStart asks for the bootstrap training once enough labelled
// vectors exist and the registry has no champion, and asks again (under a
// new key) if no champion appeared within BootstrapRetry of a request: a
// bootstrap that failed must not leave the model without one until a
// restart.
func (w *Worker) watchColdStart(ctx context.Context) error {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var logged, requested time.Time
	for attempt := 1; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if w.feed.Champion(w.cfg.Model) != nil {
			return nil
		}
		if !requested.IsZero() && time.Since(requested) < w.cfg.BootstrapRetry {
			continue
		}
		n := w.buf.countCompleteSince(w.buf.firstEventTime().Add(w.cfg.WarmUp))
		if n < w.cfg.MinRows {
			if time.Since(logged) > 10*time.Second {
				logged = time.Now()
				w.log.Info("cold start: waiting for labelled vectors to bootstrap v1", "model", w.cfg.Model, "have_complete", n, "need", w.cfg.MinRows)
			}
			continue
		}
		key := w.cfg.Model + "/bootstrap"
		if attempt > 1 {
			key += "/" + strconv.Itoa(attempt)
		}
		req := schemas.RetrainRequest{IdempotencyKey: key, Model: w.cfg.Model, Reason: reasonBootstrap, RequestedAt: time.Now().UTC()}
		if err := publishJSON(w.pub, w.kafka.Topics.Retrain, req.Model, req); err != nil {
			w.log.Error("cannot request bootstrap training; will retry", "err", err)
			continue
		}
		w.log.Info("bootstrap training requested", "model", w.cfg.Model, "key", key, "labelled_vectors", n)
		requested = time.Now()
		attempt++
	}
}

// handle trains once per idempotency key.
func (w *Worker) handle(msg *message.Message) error {
	var req schemas.RetrainRequest
	if err := json.Unmarshal(msg.Payload, &req); err != nil {
		return fmt.Errorf("cannot decode retrain request %s: %w: %w", msg.UUID, errPermanent, err)
	}
	if req.Model != w.cfg.Model {
		return nil
	}
	if done, v := w.handled(req.IdempotencyKey); done {
		w.log.Info("retrain request already handled; skipped", "key", req.IdempotencyKey)
		w.m.duplicates.Inc()
		// A crash between the version record and the alias move leaves a
		// version that passed the gate with no decision after it. Not when
		// this process trained it (it wrote the move; the feed may not
		// show it yet), and only after the replica that trained it had
		// time to write it.
		w.mu.Lock()
		mine := w.done[req.IdempotencyKey]
		w.mu.Unlock()
		if mine || v == nil || !v.Metrics.GatePassed {
			return nil
		}
		deadline := time.Now().Add(recoverAfter)
		for !w.decided(v) && time.Now().Before(deadline) {
			select {
			case <-msg.Context().Done():
				return msg.Context().Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
		if champ := w.feed.Champion(req.Model); !w.decided(v) && (champ == nil || champ.Version < v.Version) {
			w.log.Warn("version passed the gate but has no alias move; writing it", "version", v.Version, "key", req.IdempotencyKey)
			return w.afterGate(v)
		}
		return nil
	}
	if req.Reason == reasonBootstrap && w.feed.Champion(req.Model) != nil {
		w.log.Info("bootstrap request skipped: the model has a champion", "key", req.IdempotencyKey)
		return nil
	}
	ctx, cancel := context.WithTimeout(msg.Context(), w.cfg.DataWait)
	defer cancel()
	from := req.DataFrom
	if first := w.buf.firstEventTime(); !first.IsZero() && from.Before(first.Add(w.cfg.WarmUp)) {
		from = first.Add(w.cfg.WarmUp)
	}
	rows, err := w.waitForRows(ctx, from)
	if err != nil {
		return fmt.Errorf("cannot build training set for %s: %w", req.IdempotencyKey, err)
	}
	// A request another replica is training waits here, without a
	// training slot; claim checks again once this one has a slot.
	if trained, err := w.awaitHolder(msg.Context(), req.IdempotencyKey); err != nil || trained {
		if trained {
			w.log.Info("retrain request trained by another replica; skipped", "key", req.IdempotencyKey)
			w.m.duplicates.Inc()
		}
		return err
	}
	// After awaitHolder: a request another replica trains never waits on
	// ClickHouse; under the message's context, not DataWait's, so the
	// ClickHouse read has its own clickhouse.wait whatever the rows took.
	rows, source, err := w.trainingSet(msg.Context(), req, from, rows)
	if err != nil {
		return fmt.Errorf("cannot build training set for %s: %w", req.IdempotencyKey, err)
	}
	select {
	case w.sem <- struct{}{}:
		defer func() { <-w.sem }()
	case <-msg.Context().Done():
		return msg.Context().Err()
	}
	number, err := w.claim(msg.Context(), req.IdempotencyKey)
	if err != nil {
		return fmt.Errorf("cannot claim retrain request %s: %w", req.IdempotencyKey, err)
	}
	if number == 0 {
		w.log.Info("retrain request trained by another replica; skipped", "key", req.IdempotencyKey)
		w.m.duplicates.Inc()
		return nil
	}
	w.m.running.Inc()
	defer w.m.running.Dec()
	start := time.Now()
	champ := w.feed.Champion(req.Model)
	res, err := TrainWith(msg.Context(), w.cfg.Train, w.backend, w.cfg.Features, rows, champ, source)
	if err != nil {
		return fmt.Errorf("cannot train for %s: %w", req.IdempotencyKey, err)
	}
	w.m.trainSeconds.Observe(time.Since(start).Seconds())
	v := &res.Version
	v.Model = req.Model
	v.RetrainOf = req.IdempotencyKey
	if champ != nil {
		v.Parent = champ.Version
	}
	// The number was reserved on the registry before training, so no
	// other training of any replica uses it (a failed training leaves a
	// gap).
	v.Version = number
	if err := w.publishVersion(v, res.Passed, req); err != nil {
		return err
	}
	w.mu.Lock()
	w.done[req.IdempotencyKey] = true
	w.mu.Unlock()
	return nil
}

// handled reports whether the key was trained by this process or is
// recorded on a version in the registry (another replica, an earlier run),
// and that version when the registry has it.
func (w *Worker) handled(key string) (bool, *schemas.ModelVersion) {
	for _, v := range w.feed.Versions(w.cfg.Model) {
		if v.RetrainOf == key {
			return true, v
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.done[key], nil
}

// awaitHolder waits while another replica holds a live claim on the
// retrain request key; it reports whether the key's version appeared.
func (w *Worker) awaitHolder(ctx context.Context, key string) (bool, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	logged := false
	for {
		if done, _ := w.handled(key); done {
			return true, nil
		}
		h, held := w.reg.KeyHolder(w.cfg.Model, key, w.cfg.ClaimTTL)
		if !held || ownedBy(h.Owner, w.id) {
			return false, nil
		}
		if !logged {
			logged = true
			w.log.Info("retrain request claimed by another replica; waiting for its version", "key", key, "claim", h.Owner, "version", h.Version)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-t.C:
		}
	}
}

// claim reserves a version number for the retrain request key (see
// Registry.Reserve) once no other replica holds a live claim on the key.
// It returns 0 when the key's version appeared meanwhile: another replica
// trained it.
func (w *Worker) claim(ctx context.Context, key string) (int, error) {
	for {
		if trained, err := w.awaitHolder(ctx, key); err != nil || trained {
			return 0, err
		}
		n, id, err := w.reg.Reserve(ctx, w.cfg.Model, key, w.id)
		if err != nil {
			return 0, err
		}
		// Another replica may have claimed the key between the check and
		// the reservation: the first claim in the log holds it.
		if h, held := w.reg.KeyHolder(w.cfg.Model, key, w.cfg.ClaimTTL); !held || h.Owner == id || ownedBy(h.Owner, w.id) {
			return n, nil
		}
		w.log.Info("version number reserved but the request is claimed by another replica; number left unused", "key", key, "version", n)
	}
}

func (w *Worker) waitForRows(ctx context.Context, from time.Time) ([]schemas.Label, error) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if n := w.buf.countCompleteSince(from); n >= w.cfg.MinRows {
			return w.buf.completeSince(from), nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil, ctx.Err() // shutdown: redelivered later, not poison
			}
			return nil, fmt.Errorf("%w: %d newer than %s after waiting (need %d)", ErrNotEnoughData, w.buf.countCompleteSince(from), from.Format(time.RFC3339), w.cfg.MinRows)
		case <-t.C:
		}
	}
}

// trainingSet returns the training set of a request and its source: the
// rows of the replay's complete window [from, its end] (replayed, from the
// labels topic) or, when ClickHouse is configured, the same window read
// from ClickHouse.
//
// ClickHouse lags the labels topic (the sink commits only after an
// acknowledged insert) and may be down. The decision, so that the loop
// keeps closing without the analytics store: ClickHouse's rows are used
// once they include every row the replay has for the window (it may have
// more, rows the bounded buffer no longer holds); until then it is asked
// again every second, and after ClickHouse.Wait the replay's rows are used
// with a warning and driftline_trainer_dataset_fallbacks_total. The
// version records which source built it (Dataset.Source); when ClickHouse
// is caught up both give the same rows and the same fingerprint.
func (w *Worker) trainingSet(ctx context.Context, req schemas.RetrainRequest, from time.Time, replayed []schemas.Label) ([]schemas.Label, string, error) {
	if w.ch == nil {
		w.m.datasetsReplay.Inc()
		return replayed, SourceLabelsTopic, nil
	}
	// The window ends at the replay's newest row, not at the buffer's
	// complete end read now: that may have moved since the rows were
	// taken, and ClickHouse would then return a longer window than the
	// replay's, with another fingerprint.
	to := w.buf.completeEnd()
	if len(replayed) > 0 {
		to = slices.MaxFunc(replayed, func(a, b schemas.Label) int { return a.EventTime.Compare(b.EventTime) }).EventTime
	}
	deadline := time.Now().Add(w.cfg.ClickHouse.Wait)
	var why string
	for {
		rows, err := w.ch.TrainingRows(ctx, w.cfg.Model, from, to)
		if err == nil {
			rows = slices.DeleteFunc(rows, func(l schemas.Label) bool { return len(l.Values) != len(w.cfg.Features) })
			missing := missingRows(rows, replayed)
			if missing == 0 {
				w.log.Info("training set read from ClickHouse", "key", req.IdempotencyKey, "rows", len(rows), "replayed_rows", len(replayed),
					"from", from.Format(time.RFC3339Nano), "to", to.Format(time.RFC3339Nano))
				w.m.datasetsCH.Inc()
				return rows, SourceClickHouse, nil
			}
			why = fmt.Sprintf("ClickHouse lacks %d of the %d rows the labels topic has for the window (the sink lags)", missing, len(replayed))
		} else {
			why = err.Error()
		}
		if ctx.Err() != nil {
			// Shutting down or the message was nacked: not a ClickHouse
			// failure; the request is delivered again.
			return nil, "", ctx.Err()
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	w.log.Warn("cannot build the training set from ClickHouse; using the labels-topic replay", "key", req.IdempotencyKey,
		"waited", w.cfg.ClickHouse.Wait, "reason", why, "rows", len(replayed))
	w.m.dataFallbacks.Inc()
	w.m.datasetsReplay.Inc()
	return replayed, SourceLabelsTopic, nil
}

// missingRows counts the rows of want whose event id is not in have.
func missingRows(have, want []schemas.Label) int {
	ids := make(map[string]struct{}, len(have))
	for _, l := range have {
		ids[l.EventID] = struct{}{}
	}
	n := 0
	for _, l := range want {
		if _, ok := ids[l.EventID]; !ok {
			n++
		}
	}
	return n
}

func datasetSource(v *schemas.ModelVersion) string {
	if v.Dataset == nil {
		return ""
	}
	return v.Dataset.Source
}

func datasetSHA(v *schemas.ModelVersion) string {
	if v.Dataset == nil {
		return ""
	}
	return v.Dataset.SHA256
}

// publishVersion writes the version record (a gate that rejected the
// challenger is recorded there: gate_passed false with its evidence), then,
// if the gate passed, the alias move that follows it. Scorers swap when
// they read the champion alias.
func (w *Worker) publishVersion(v *schemas.ModelVersion, passed bool, req schemas.RetrainRequest) error {
	if err := w.reg.PublishVersion(v); err != nil {
		return err
	}
	w.m.versions.Inc()
	w.log.Info("version published", "model", v.Model, "version", v.Version, "parent", v.Parent, "rows", v.Rows, "backend", v.Backend,
		"holdout_auc", round4(v.Metrics.AUC), "champion_auc", round4(v.Metrics.ChampionAUC), "gate_passed", passed, "request", req.IdempotencyKey,
		"dataset_source", datasetSource(v), "dataset_sha256", datasetSHA(v))
	if v.Parent != 0 {
		// The candidate judged against the champion, passed or not: the
		// challenger alias, with the gate's evidence.
		ev := w.gateEvidence(v)
		ev["gate_passed"] = 0
		if passed {
			ev["gate_passed"] = 1
		}
		if _, err := w.reg.MoveAlias(v.Model, schemas.AliasChallenger, v.Version, schemas.DecisionGated, v.Metrics.GateReason, ev); err != nil {
			return err
		}
	}
	if !passed {
		w.m.gateRejected.Inc()
		w.log.Warn("gate rejected challenger; champion unchanged", "model", v.Model, "version", v.Version, "reason", v.Metrics.GateReason)
		return nil
	}
	return w.afterGate(v)
}

// decided reports whether the alias move that follows v's gate is already
// in the registry (a redelivered request must not write it twice).
func (w *Worker) decided(v *schemas.ModelVersion) bool {
	for _, alias := range []string{schemas.AliasChampion, schemas.AliasShadow} {
		for _, m := range w.feed.AliasHistory(v.Model, alias) {
			if m.Version == v.Version {
				return true
			}
		}
	}
	return false
}

// afterGate writes the alias move of a challenger that passed the gate: the
// shadow alias when a shadow period is configured (the Shadow component
// promotes it later), else the champion.
func (w *Worker) afterGate(v *schemas.ModelVersion) error {
	evidence := w.gateEvidence(v)
	if w.cfg.Shadow.Enabled && v.Parent != 0 {
		if _, err := w.reg.MoveAlias(v.Model, schemas.AliasShadow, v.Version, schemas.DecisionShadowStarted, v.Metrics.GateReason, evidence); err != nil {
			return err
		}
		w.log.Info("challenger passed the gate; scored in shadow", "model", v.Model, "version", v.Version, "champion", v.Parent)
		return nil
	}
	if _, err := w.reg.MoveAlias(v.Model, schemas.AliasChampion, v.Version, schemas.DecisionGated, v.Metrics.GateReason, evidence); err != nil {
		return err
	}
	w.m.promotions.Inc()
	w.log.Info("champion moved", "model", v.Model, "from", v.Parent, "to", v.Version)
	return nil
}

// gateEvidence is the evidence of a gate decision on v.
func (w *Worker) gateEvidence(v *schemas.ModelVersion) map[string]float64 {
	return map[string]float64{
		"holdout_auc": v.Metrics.AUC, "holdout_log_loss": v.Metrics.LogLoss, "holdout_rows": float64(v.Metrics.HoldoutRows),
		"champion_auc": v.Metrics.ChampionAUC, "champion_log_loss": v.Metrics.ChampionLogLoss, "min_gain": w.cfg.Train.MinGain,
	}
}

// pickBackend chooses the training backend once, at start.
func (w *Worker) pickBackend(ctx context.Context) Backend {
	if w.cfg.Backend != BackendNameGPU {
		return CPU{}
	}
	if !Probe(ctx, w.cfg.GPU.Probe) {
		w.log.Warn("gpu backend configured but the device probe failed; training on the CPU", "probe", w.cfg.GPU.Probe)
		return CPU{}
	}
	w.log.Info("training on the gpu backend", "command", w.cfg.GPU.Command)
	return Command{Command: w.cfg.GPU.Command, Timeout: w.cfg.GPU.Timeout, Fallback: CPU{}, Log: w.log}
}

func publishJSON(pub message.Publisher, topic, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode %s record: %w", topic, err)
	}
	msg := newMessage(b)
	msg.Metadata.Set(kpubsub.KeyMetadata, key)
	return pub.Publish(topic, msg)
}

func round4(v float64) float64 { return float64(int64(v*1e4+0.5)) / 1e4 }

// newMessage wraps a payload in a Watermill message with a fresh UUID.
func newMessage(payload []byte) *message.Message {
	return message.NewMessage(watermill.NewUUID(), payload)
}
