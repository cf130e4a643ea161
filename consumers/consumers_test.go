package consumers

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func startBroker(t *testing.T, dir string) (*Broker, KafkaConfig) {
	t.Helper()
	b, err := NewBroker(BrokerConfig{DataDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	cfg := KafkaConfig{Brokers: []string{b.Addr()}, Partitions: 4}
	cfg.SetDefaults()
	return b, cfg
}

func registryRecord(t *testing.T, rec schemas.RegistryRecord, key string) *kgo.Record {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: schemas.TopicModels, Key: []byte(key), Value: b}
}

func version(v int) schemas.RegistryRecord {
	return schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &schemas.ModelVersion{Model: "m", Version: v}}
}

func champion(v int) schemas.RegistryRecord {
	return schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasChampion, Version: v}}
}

func TestProvisionIsIdempotentAndCompactsTheRegistry(t *testing.T) {
	b, cfg := startBroker(t, "")
	defer b.Close()
	ctx := context.Background()
	for range 2 {
		if err := ProvisionTopics(ctx, cfg, quiet); err != nil {
			t.Fatalf("provision (must be safe to repeat): %v", err)
		}
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	defer cl.Close()
	adm := kadm.NewClient(cl)
	td, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Topics.Specs(cfg.Partitions) {
		if got := len(td[s.Name].Partitions); got != int(s.Partitions) {
			t.Errorf("%s: %d partitions, want %d", s.Name, got, s.Partitions)
		}
	}
	rc, err := adm.DescribeTopicConfigs(ctx, cfg.Topics.Models)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rc.On(cfg.Topics.Models, nil)
	if err != nil {
		t.Fatal(err)
	}
	policy := ""
	for _, kv := range c.Configs {
		if kv.Key == "cleanup.policy" {
			policy = kv.MaybeValue()
		}
	}
	if policy != "compact" {
		t.Errorf("registry cleanup.policy = %q, want compact", policy)
	}
}

func TestModelFeedReadyAndChampion(t *testing.T) {
	b, cfg := startBroker(t, "")
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := ProvisionTopics(ctx, cfg, quiet); err != nil {
		t.Fatal(err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	defer cl.Close()
	// v1 champion, then v2 published but rejected by the gate: the
	// champion stays v1.
	err := cl.ProduceSync(ctx,
		registryRecord(t, version(1), schemas.VersionKey("m", 1)),
		registryRecord(t, champion(1), schemas.AliasKey("m", schemas.AliasChampion)),
		registryRecord(t, version(2), schemas.VersionKey("m", 2)),
	).FirstErr()
	if err != nil {
		t.Fatal(err)
	}

	feed := NewModelFeed(cfg, quiet)
	swaps := make(chan int, 4)
	feed.OnChampion(func(v *schemas.ModelVersion) { swaps <- v.Version })
	go func() { _ = feed.Run(ctx) }()
	select {
	case <-feed.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed never became ready")
	}
	// Ready means the registry as it was at start has been read.
	if c := feed.Champion("m"); c == nil || c.Version != 1 {
		t.Fatalf("champion at ready = %+v, want v1", c)
	}
	if n := feed.LatestVersion("m"); n != 2 {
		t.Errorf("latest version %d, want 2", n)
	}
	if <-swaps != 1 {
		t.Error("OnChampion did not report v1")
	}
	if err := cl.ProduceSync(ctx, registryRecord(t, champion(2), schemas.AliasKey("m", schemas.AliasChampion))).FirstErr(); err != nil {
		t.Fatal(err)
	}
	select {
	case v := <-swaps:
		if v != 2 || feed.Champion("m").Version != 2 {
			t.Errorf("after the alias move: swap to %d, champion %d", v, feed.Champion("m").Version)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("alias move not seen")
	}
	if vs := feed.Versions("m"); len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Errorf("versions = %v", vs)
	}
}

func TestBrokerDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	b, cfg := startBroker(t, dir)
	addr := b.Addr()
	if err := ProvisionTopics(ctx, cfg, quiet); err != nil {
		t.Fatal(err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(addr))
	if err := cl.ProduceSync(ctx,
		registryRecord(t, version(1), schemas.VersionKey("m", 1)),
		registryRecord(t, champion(1), schemas.AliasKey("m", schemas.AliasChampion)),
	).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	offsets := kadm.Offsets{}
	offsets.Add(kadm.Offset{Topic: cfg.Topics.Cart, Partition: 0, At: 7})
	if _, err := adm.CommitOffsets(ctx, "g", offsets); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	b.Close()

	// Same data dir, same port.
	b2, err := NewBroker(BrokerConfig{Listen: addr, DataDir: dir}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	cl2, _ := kgo.NewClient(kgo.SeedBrokers(addr))
	defer cl2.Close()
	fetched, err := kadm.NewClient(cl2).FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := fetched.Lookup(cfg.Topics.Cart, 0); !ok || o.At != 7 {
		t.Errorf("committed offset after restart = %+v, want 7", o)
	}
	feed := NewModelFeed(cfg, quiet)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = feed.Run(rctx) }()
	select {
	case <-feed.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("feed never became ready after restart")
	}
	if c := feed.Champion("m"); c == nil || c.Version != 1 {
		t.Errorf("registry after restart: champion %+v, want v1", c)
	}
}

func TestDeadLetterKeepsOriginalBytesAndSource(t *testing.T) {
	src := &kgo.Record{Topic: "storefront.cart", Partition: 3, Offset: 42, Key: []byte("u1"), Value: []byte(`{"bad`),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
	d := DeadLetter("driftline.dlq", src, "record", "record: invalid JSON")
	src.Value[0] = 'X' // the source buffer may be reused by the client
	if string(d.Value) != `{"bad` || string(d.Key) != "u1" || d.Topic != "driftline.dlq" {
		t.Errorf("dead letter = %q key %q topic %s", d.Value, d.Key, d.Topic)
	}
	for k, want := range map[string]string{
		"trace": "abc", schemas.HeaderReason: "record: invalid JSON", schemas.HeaderField: "record",
		schemas.HeaderSourceTopic: "storefront.cart", schemas.HeaderSourcePartition: "3", schemas.HeaderSourceOffset: "42",
	} {
		if got := Header(d, k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestDeadLetterOfAHugeRecordIsCutWithItsHash(t *testing.T) {
	big := make([]byte, 1_020_000) // accepted by Kafka's default 1 MiB limit
	for i := range big {
		big[i] = 'x'
	}
	d := DeadLetter("driftline.dlq", &kgo.Record{Topic: "storefront.cart", Value: big}, "record", "record: too large")
	if len(d.Value) != MaxDeadLetterBytes {
		t.Errorf("dead letter value %d bytes, want cut to %d", len(d.Value), MaxDeadLetterBytes)
	}
	if Header(d, schemas.HeaderOriginalBytes) != "1020000" || len(Header(d, schemas.HeaderOriginalSHA256)) != 64 {
		t.Errorf("headers %v lack the original size and hash", d.Headers)
	}
}

// TestHugeBadRecordDoesNotStopTheDLQ produces the cut dead letter of a
// ~1 MB record through a real broker with default client limits.
func TestHugeBadRecordDoesNotStopTheDLQ(t *testing.T) {
	b, cfg := startBroker(t, "")
	defer b.Close()
	ctx := context.Background()
	if err := ProvisionTopics(ctx, cfg, quiet); err != nil {
		t.Fatal(err)
	}
	cl, _ := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	defer cl.Close()
	d := DeadLetter(cfg.Topics.DLQ, &kgo.Record{Topic: cfg.Topics.Cart, Value: make([]byte, 1_020_000)}, "record", "record: too large")
	if err := cl.ProduceSync(ctx, d).FirstErr(); err != nil {
		t.Fatalf("cannot dead-letter a huge record: %v", err)
	}
}

// Renaming one topic keeps every other topic's default (a config file that
// sets only kafka.topics.windows used to empty the rest).
func TestSetDefaultsKeepsOtherTopics(t *testing.T) {
	c := KafkaConfig{Topics: Topics{Windows: "my.windows"}}
	c.SetDefaults()
	if c.Topics.Windows != "my.windows" {
		t.Errorf("windows topic = %q, want the configured my.windows", c.Topics.Windows)
	}
	v := reflect.ValueOf(c.Topics)
	for i := range v.NumField() {
		if v.Field(i).String() == "" {
			t.Errorf("topic %s is empty after SetDefaults", v.Type().Field(i).Name)
		}
	}
	d := DefaultTopics()
	d.Windows = "my.windows"
	if c.Topics != d {
		t.Errorf("topics = %+v, want the defaults with windows renamed", c.Topics)
	}
}
