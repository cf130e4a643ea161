package trainers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// kafkaEnv is a kfake broker with every topic, a registry feed running on
// it and a Watermill publisher.
type kafkaEnv struct {
	ctx     context.Context
	cluster *kfake.Cluster
	kcfg    consumers.KafkaConfig
	feed    *consumers.ModelFeed
	pub     *kpubsub.Publisher
	log     *slog.Logger
}

func newKafkaEnv(t *testing.T) *kafkaEnv {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 4}
	kcfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: kcfg.Brokers}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	feed := consumers.NewModelFeed(kcfg, log)
	go func() { _ = feed.Run(ctx) }()
	<-feed.Ready()
	return &kafkaEnv{ctx: ctx, cluster: cluster, kcfg: kcfg, feed: feed, pub: pub, log: log}
}

// produce writes JSON records to a topic, keyed and stamped as given.
func (e *kafkaEnv) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func TestPreviousChampion(t *testing.T) {
	mv := func(v int, d string) schemas.AliasMove { return schemas.AliasMove{Version: v, Decision: d} }
	for _, c := range []struct {
		name string
		hist []schemas.AliasMove
		want int
	}{
		{"empty", nil, 0},
		{"bootstrap only", []schemas.AliasMove{mv(1, schemas.DecisionGated)}, 0},
		{"two promotions", []schemas.AliasMove{mv(1, schemas.DecisionGated), mv(2, schemas.DecisionGated)}, 1},
		{"after a rollback, the one before", []schemas.AliasMove{mv(1, ""), mv(2, ""), mv(3, ""), mv(2, schemas.DecisionRollback)}, 1},
		{"rolled back to the first: nothing left", []schemas.AliasMove{mv(1, ""), mv(2, ""), mv(1, schemas.DecisionRolledBack)}, 0},
		{"manual promote of an old version", []schemas.AliasMove{mv(1, ""), mv(2, ""), mv(1, schemas.DecisionPromoted)}, 2},
		{"repeated record of the same version", []schemas.AliasMove{mv(1, ""), mv(2, ""), mv(2, "")}, 1},
	} {
		if got := PreviousChampion(c.hist); got != c.want {
			t.Errorf("%s: PreviousChampion = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestRegistryKeepsAliasHistoryAndRollsBackInOneRecord(t *testing.T) {
	e := newKafkaEnv(t)
	reg := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	for v := 1; v <= 3; v++ {
		if err := reg.PublishVersion(&schemas.ModelVersion{Model: "m", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 10*time.Second, "three versions", func() bool { return e.feed.LatestVersion("m") == 3 })
	if _, err := reg.Rollback("m", schemas.DecisionRollback, "", nil); !errors.Is(err, ErrNoRollback) {
		t.Errorf("rollback without a champion: err = %v, want ErrNoRollback", err)
	}
	if _, err := reg.MoveAlias("m", schemas.AliasChampion, 9, schemas.DecisionPromoted, "", nil); err == nil {
		t.Error("moved an alias to a version the registry does not have")
	}
	for v := 1; v <= 3; v++ {
		if _, err := reg.MoveAlias("m", schemas.AliasChampion, v, schemas.DecisionGated, "gate", map[string]float64{"holdout_auc": 0.7}); err != nil {
			t.Fatal(err)
		}
		checkfor.Until(t, 10*time.Second, "the champion moved", func() bool { return e.feed.Champion("m") != nil && e.feed.Champion("m").Version == v })
	}
	// Each promotion retired the champion it replaced, with the same
	// decision and evidence.
	checkfor.Until(t, 10*time.Second, "v2 retired", func() bool { r := e.feed.Alias("m", schemas.AliasRetired); return r != nil && r.Version == 2 })
	if h := e.feed.AliasHistory("m", schemas.AliasRetired); len(h) != 2 || h[0].Version != 1 || h[1].Previous != 1 ||
		h[1].Decision != schemas.DecisionGated || h[1].Evidence["holdout_auc"] != 0.7 {
		t.Errorf("retired history = %+v", h)
	}

	move, err := reg.Rollback("m", schemas.DecisionRollback, "bad v3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if move.Version != 2 || move.Previous != 3 || move.Seq != 4 {
		t.Errorf("rollback move = %+v, want v3 -> v2 as move 4", move)
	}
	checkfor.Until(t, 10*time.Second, "v2 champion again", func() bool { return e.feed.Champion("m").Version == 2 })
	// The rollback cleared retired: the version it named serves again.
	checkfor.Until(t, 10*time.Second, "retired cleared", func() bool { return e.feed.Alias("m", schemas.AliasRetired) == nil })
	if h := e.feed.AliasHistory("m", schemas.AliasRetired); len(h) != 3 || h[2].Decision != schemas.DecisionRollback || h[2].Version != 0 {
		t.Errorf("retired history after the rollback = %+v", h)
	}

	// Compaction keeps every move: each has its own key. Read the topic
	// after compacting and count the alias records.
	e.cluster.Compact()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.ConsumeTopics(e.kcfg.Topics.Models),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var keys []string
	checkfor.Until(t, 10*time.Second, "the registry read back", func() bool {
		pctx, cancel := context.WithTimeout(e.ctx, 200*time.Millisecond)
		defer cancel()
		cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { keys = append(keys, string(r.Key)) })
		return len(keys) >= 10
	})
	want := []string{"m/v1", "m/v2", "m/v3", "m@champion#1", "m@champion#2", "m@retired#1", "m@champion#3", "m@retired#2", "m@champion#4", "m@retired#3"}
	if len(keys) != len(want) {
		t.Fatalf("registry keys %v, want %v", keys, want)
	}
	for i := range want {
		// Alias move keys end in "~<writer id>" (one writer here).
		if k, _, _ := strings.Cut(keys[i], "~"); k != want[i] {
			t.Errorf("registry key %d = %q, want %q", i, keys[i], want[i])
		}
	}
	// A fresh reader sees the whole history and the rolled-back champion.
	feed := consumers.NewModelFeed(e.kcfg, e.log)
	go func() { _ = feed.Run(e.ctx) }()
	<-feed.Ready()
	h := feed.AliasHistory("m", schemas.AliasChampion)
	if len(h) != 4 || h[3].Decision != schemas.DecisionRollback || h[0].Evidence["holdout_auc"] != 0.7 || feed.Champion("m").Version != 2 {
		t.Errorf("history after restart = %+v", h)
	}
	if PreviousChampion(h) != 1 {
		t.Errorf("next rollback would go to v%d, want v1", PreviousChampion(h))
	}
}

func TestShadowAliasClearsWithVersionZero(t *testing.T) {
	e := newKafkaEnv(t)
	reg := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	if err := reg.PublishVersion(&schemas.ModelVersion{Model: "m", Version: 1}); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "v1", func() bool { return e.feed.Version("m", 1) != nil })
	if _, err := reg.MoveAlias("m", schemas.AliasShadow, 1, schemas.DecisionShadowStarted, "", nil); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the shadow", func() bool { return e.feed.Alias("m", schemas.AliasShadow) != nil })
	if _, err := reg.MoveAlias("m", schemas.AliasShadow, 0, schemas.DecisionShadowRejected, "worse", nil); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "the shadow cleared", func() bool { return e.feed.Alias("m", schemas.AliasShadow) == nil })
	if h := e.feed.AliasHistory("m", schemas.AliasShadow); len(h) != 2 || h[1].Previous != 1 || h[1].Seq != 2 {
		t.Errorf("shadow history = %+v", h)
	}
}

// TestRacingWritersKeepEveryAliasMove races two Registry writers on one
// alias: the second reads the registry through a feed that has not yet
// seen the first's move (a second replica, or `driftline models promote`,
// at the same instant), so both propose the same seq. After compaction
// every move must still be there, and a fresh reader must agree with the
// live one on the current champion and the history's order.
func TestRacingWritersKeepEveryAliasMove(t *testing.T) {
	e := newKafkaEnv(t)
	a := NewRegistry(e.feed, e.pub, e.kcfg.Topics.Models)
	stale := consumers.NewModelFeed(e.kcfg, e.log) // never run: reads nothing
	b := NewRegistry(stale, e.pub, e.kcfg.Topics.Models)
	for v := 1; v <= 2; v++ {
		if err := a.PublishVersion(&schemas.ModelVersion{Model: "m", Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.PublishVersion(&schemas.ModelVersion{Model: "m", Version: 2}); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "two versions", func() bool { return e.feed.LatestVersion("m") == 2 })
	ma, err := a.MoveAlias("m", schemas.AliasChampion, 1, schemas.DecisionGated, "gate", nil)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := b.MoveAlias("m", schemas.AliasChampion, 2, schemas.DecisionPromoted, "operator", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ma.Seq != mb.Seq {
		t.Fatalf("the writers did not race: seqs %d and %d", ma.Seq, mb.Seq)
	}
	checkfor.Until(t, 10*time.Second, "both moves read", func() bool { return len(e.feed.AliasHistory("m", schemas.AliasChampion)) == 2 })
	live := e.feed.AliasHistory("m", schemas.AliasChampion)
	if live[0].Version != 1 || live[1].Version != 2 || e.feed.Champion("m").Version != 2 {
		t.Fatalf("live history %+v, champion %+v: want v1 then v2 in log order", live, e.feed.Champion("m"))
	}

	// Compaction leaves the last batch alone: write one more record so the
	// two moves are in the part it cleans.
	if err := a.PublishVersion(&schemas.ModelVersion{Model: "m", Version: 3}); err != nil {
		t.Fatal(err)
	}
	checkfor.Until(t, 10*time.Second, "v3", func() bool { return e.feed.LatestVersion("m") == 3 })
	e.cluster.Compact()
	fresh := consumers.NewModelFeed(e.kcfg, e.log)
	go func() { _ = fresh.Run(e.ctx) }()
	<-fresh.Ready()
	h := fresh.AliasHistory("m", schemas.AliasChampion)
	if len(h) != len(live) {
		t.Fatalf("after compaction a fresh reader has %d champion moves, want %d: %+v", len(h), len(live), h)
	}
	for i := range h {
		if h[i].Version != live[i].Version || h[i].Decision != live[i].Decision {
			t.Errorf("fresh reader's move %d = v%d (%s), live reader's = v%d (%s)", i, h[i].Version, h[i].Decision, live[i].Version, live[i].Decision)
		}
	}
	if c := fresh.Champion("m"); c == nil || c.Version != e.feed.Champion("m").Version {
		t.Errorf("fresh reader's champion = %+v, live reader's = v%d", c, e.feed.Champion("m").Version)
	}
}
