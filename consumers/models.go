package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// ModelFeed tails the registry topic from its start and keeps every model
// version and alias it has seen. Every stage that serves, monitors or trains
// a model reads the registry through one. Registry writes are the trainers'
// job; a ModelFeed only reads.
type ModelFeed struct {
	cfg KafkaConfig
	log *slog.Logger

	mu        sync.RWMutex
	versions  map[string]map[int]*schemas.ModelVersion  // model -> version -> record
	aliases   map[string]map[string]int                 // model -> alias -> version
	history   map[string]map[string][]schemas.AliasMove // model -> alias -> moves, oldest first
	listeners []func(*schemas.ModelVersion)

	ready     chan struct{}
	readyOnce sync.Once
}

// NewModelFeed returns a feed over cfg.Topics.Models. Call OnChampion before
// Run.
func NewModelFeed(cfg KafkaConfig, log *slog.Logger) *ModelFeed {
	return &ModelFeed{
		cfg:      cfg,
		log:      log,
		versions: map[string]map[int]*schemas.ModelVersion{},
		aliases:  map[string]map[string]int{},
		history:  map[string]map[string][]schemas.AliasMove{},
		ready:    make(chan struct{}),
	}
}

// OnChampion registers fn to be called, from Run's goroutine, each time a
// model's champion alias moves to a version the feed knows (or the version
// an alias already points at arrives). fn must not block: the feed waits
// for it.
func (f *ModelFeed) OnChampion(fn func(*schemas.ModelVersion)) {
	f.mu.Lock()
	f.listeners = append(f.listeners, fn)
	f.mu.Unlock()
}

// Ready is closed once the feed has read the registry up to where it ended
// when Run started, so a scorer does not begin before it knows the champion.
func (f *ModelFeed) Ready() <-chan struct{} { return f.ready }

// Champion returns the version the model's champion alias points at, or nil.
func (f *ModelFeed) Champion(model string) *schemas.ModelVersion {
	return f.Alias(model, schemas.AliasChampion)
}

// Alias returns the version an alias points at, or nil.
func (f *ModelFeed) Alias(model, alias string) *schemas.ModelVersion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	v, ok := f.aliases[model][alias]
	if !ok {
		return nil
	}
	return f.versions[model][v]
}

// AliasHistory returns every move of a model's alias the feed has read,
// oldest first (a copy).
func (f *ModelFeed) AliasHistory(model, alias string) []schemas.AliasMove {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.history[model][alias])
}

// NextAliasSeq is the Seq of the next move of a model's alias: one more than
// the highest read so far.
func (f *ModelFeed) NextAliasSeq(model, alias string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for _, m := range f.history[model][alias] {
		n = max(n, m.Seq)
	}
	return n + 1
}

// Version returns one version of a model, or nil.
func (f *ModelFeed) Version(model string, version int) *schemas.ModelVersion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.versions[model][version]
}

// Versions returns every known version of a model, oldest first.
func (f *ModelFeed) Versions(model string) []*schemas.ModelVersion {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*schemas.ModelVersion, 0, len(f.versions[model]))
	for _, v := range slices.Sorted(maps.Keys(f.versions[model])) {
		out = append(out, f.versions[model][v])
	}
	return out
}

// LatestVersion returns the highest version number of a model, 0 if none.
func (f *ModelFeed) LatestVersion(model string) int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := 0
	for v := range f.versions[model] {
		n = max(n, v)
	}
	return n
}

// Run tails the registry until ctx ends.
func (f *ModelFeed) Run(ctx context.Context) error {
	topic := f.cfg.Topics.Models
	cl, err := kgo.NewClient(f.cfg.Opts(f.log,
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200e6),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create registry client: %w", err)
	}
	defer cl.Close()

	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("cannot list end offsets of %s: %w", topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	if len(pending) == 0 {
		f.markReady()
	}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				f.log.Warn("registry fetch failed", "topic", t, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			f.apply(r)
			if end, ok := pending[r.Partition]; ok && r.Offset+1 >= end {
				delete(pending, r.Partition)
				if len(pending) == 0 {
					f.markReady()
				}
			}
		})
	}
}

func (f *ModelFeed) markReady() { f.readyOnce.Do(func() { close(f.ready) }) }

// apply folds one registry record into the feed.
func (f *ModelFeed) apply(r *kgo.Record) {
	if len(r.Value) == 0 {
		return // a tombstone
	}
	var rec schemas.RegistryRecord
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		f.log.Error("cannot decode registry record; skipped", "offset", r.Offset, "key", string(r.Key), "err", err)
		return
	}
	switch {
	case rec.Kind == schemas.RegistryVersion && rec.Version != nil:
		v := rec.Version
		f.mu.Lock()
		if f.versions[v.Model] == nil {
			f.versions[v.Model] = map[int]*schemas.ModelVersion{}
		}
		f.versions[v.Model][v.Version] = v
		// After compaction a version record can follow the alias that
		// points at it: the champion becomes known only now.
		champ, ok := f.aliases[v.Model][schemas.AliasChampion]
		listeners := f.listeners
		f.mu.Unlock()
		if ok && champ == v.Version {
			for _, fn := range listeners {
				fn(v)
			}
		}
	case rec.Kind == schemas.RegistryAlias && rec.Alias != nil:
		a := rec.Alias
		f.mu.Lock()
		if f.aliases[a.Model] == nil {
			f.aliases[a.Model] = map[string]int{}
			f.history[a.Model] = map[string][]schemas.AliasMove{}
		}
		f.history[a.Model][a.Alias] = append(f.history[a.Model][a.Alias], *a)
		if a.Version == 0 {
			// Version 0 clears the alias (e.g. a shadow that was rejected).
			delete(f.aliases[a.Model], a.Alias)
			f.mu.Unlock()
			return
		}
		f.aliases[a.Model][a.Alias] = a.Version
		mv := f.versions[a.Model][a.Version]
		listeners := f.listeners
		f.mu.Unlock()
		if a.Alias != schemas.AliasChampion {
			return
		}
		if mv == nil {
			f.log.Error("champion alias points at an unknown version", "model", a.Model, "version", a.Version)
			return
		}
		for _, fn := range listeners {
			fn(mv)
		}
	default:
		f.log.Error("unknown registry record kind; skipped", "offset", r.Offset, "kind", rec.Kind)
	}
}
