package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/consumers/kpubsub"
	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

// registryBroker is a kfake broker with every topic and a registry holding
// versions 1..3 of "m", champion moved to each in turn; labels of v3's
// dataset are on the labels topic.
func registryBroker(t *testing.T) (string, *trainers.Registry, schemas.Dataset) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	kcfg := consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 2}
	kcfg.SetDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		t.Fatal(err)
	}
	rows := readTrainRows(t)[:3000]
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i := range rows {
		rows[i].Model, rows[i].EventTime, rows[i].UserID = "m", t0.Add(time.Duration(i)*time.Second), "u"+strconv.Itoa(i%7)
		rows[i].EventID = "e" + strconv.Itoa(i)
		b, _ := json.Marshal(rows[i])
		recs = append(recs, &kgo.Record{Topic: kcfg.Topics.Labels, Key: []byte(rows[i].UserID), Value: b, Timestamp: rows[i].EventTime})
	}
	// Labels outside the dataset's range, before and after it.
	for _, at := range []time.Time{t0.Add(-time.Hour), t0.Add(10 * time.Hour)} {
		l := rows[0]
		l.EventTime = at
		b, _ := json.Marshal(l)
		recs = append(recs, &kgo.Record{Topic: kcfg.Topics.Labels, Key: []byte("u0"), Value: b, Timestamp: at})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	names := make([]string, 30)
	for i := range names {
		names[i] = "f" + strconv.Itoa(i)
	}
	res, err := trainers.TrainWith(ctx, trainers.TrainConfig{L2: 2}, trainers.CPU{}, names, rows, nil, trainers.SourceLabelsTopic)
	if err != nil {
		t.Fatal(err)
	}

	feed := consumers.NewModelFeed(kcfg, log)
	go func() { _ = feed.Run(ctx) }()
	<-feed.Ready()
	pub, err := kpubsub.NewPublisher(kpubsub.PublisherConfig{Brokers: kcfg.Brokers}, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	reg := trainers.NewRegistry(feed, pub, kcfg.Topics.Models)
	for v := 1; v <= 3; v++ {
		mv := res.Version
		mv.Model, mv.Version, mv.Parent = "m", v, v-1
		if err := reg.PublishVersion(&mv); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 10*time.Second, "three versions", func() bool { return feed.LatestVersion("m") == 3 })
	for v := 1; v <= 3; v++ {
		if _, err := reg.MoveAlias("m", schemas.AliasChampion, v, schemas.DecisionGated, "gate", nil); err != nil {
			t.Fatal(err)
		}
	}
	checkfor.Until(t, 10*time.Second, "v3 champion", func() bool { return feed.Champion("m") != nil && feed.Champion("m").Version == 3 })
	return kcfg.Brokers[0], reg, *res.Version.Dataset
}

func readTrainRows(t *testing.T) []schemas.Label {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "testdata", "train", "purchase_20k.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := trainers.ReadLabels(f)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func models(t *testing.T, args ...string) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := runModels(context.Background(), args, slog.New(slog.NewTextHandler(io.Discard, nil)), &out); err != nil {
		t.Fatalf("models %v: %v", args, err)
	}
	return out.Bytes()
}

// TestModelsPromoteRollbackHistory drives `driftline models` against a
// kfake broker: list, a manual promotion, two rollbacks walking back
// through the champions, and the history that records every move.
func TestModelsPromoteRollbackHistory(t *testing.T) {
	addr, _, _ := registryBroker(t)
	b := "--brokers=" + addr
	var list []struct {
		Version  int              `json:"version"`
		Champion bool             `json:"champion"`
		Aliases  []string         `json:"aliases"`
		Dataset  *schemas.Dataset `json:"dataset"`
	}
	if err := json.Unmarshal(models(t, "list", b, "--model=m", "--json"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || !list[2].Champion || list[0].Champion || list[2].Dataset == nil || list[2].Dataset.Rows != 3000 {
		t.Fatalf("list = %+v", list)
	}

	var move schemas.AliasMove
	if err := json.Unmarshal(models(t, "rollback", b, "--model=m", "--json", "--reason=v3 misbehaves"), &move); err != nil {
		t.Fatal(err)
	}
	if move.Version != 2 || move.Previous != 3 || move.Decision != schemas.DecisionRollback || move.Reason != "v3 misbehaves" || move.Seq != 4 {
		t.Errorf("first rollback = %+v", move)
	}
	if err := json.Unmarshal(models(t, "rollback", b, "--model=m", "--json"), &move); err != nil {
		t.Fatal(err)
	}
	if move.Version != 1 || move.Previous != 2 {
		t.Errorf("second rollback = %+v, want v2 -> v1", move)
	}
	var out bytes.Buffer
	err := runModels(context.Background(), []string{"rollback", b, "--model=m"}, slog.New(slog.NewTextHandler(io.Discard, nil)), &out)
	if !errors.Is(err, trainers.ErrNoRollback) {
		t.Errorf("third rollback: err = %v, want ErrNoRollback", err)
	}
	if got := string(models(t, "promote", b, "--model=m", "--version=3")); !strings.Contains(got, "champion of m moved v1 -> v3 (promoted, seq 6)") {
		t.Errorf("promote printed %q", got)
	}
	var hist []schemas.AliasMove
	if err := json.Unmarshal(models(t, "history", b, "--model=m", "--json"), &hist); err != nil {
		t.Fatal(err)
	}
	var got []int
	for _, m := range hist {
		got = append(got, m.Version)
	}
	if want := []int{1, 2, 3, 2, 1, 3}; len(got) != len(want) || got[3] != 2 || got[4] != 1 || got[5] != 3 {
		t.Errorf("champion history %v, want %v", got, want)
	}
	if err := runModels(context.Background(), []string{"promote", b, "--model=m", "--version=9"}, slog.New(slog.NewTextHandler(io.Discard, nil)), &out); err == nil {
		t.Error("promoted a version the registry does not have")
	}
}

// TestTrainReproducesAVersionFromItsRecordedDataset replays a version's
// dataset from the labels topic by its recorded time range and gets the
// same fingerprint and holdout AUC.
func TestTrainReproducesAVersionFromItsRecordedDataset(t *testing.T) {
	addr, _, ds := registryBroker(t)
	var out bytes.Buffer
	save := filepath.Join(t.TempDir(), "v2.jsonl")
	if err := runTrain(context.Background(), []string{"--brokers=" + addr, "--model=m", "--version=2", "--json", "--save=" + save},
		slog.New(slog.NewTextHandler(io.Discard, nil)), &out); err != nil {
		t.Fatal(err)
	}
	var rep trainReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if r := rep.Reproduces; r == nil || !r.FingerprintMatches || r.AUCDiff != 0 || rep.Rows != 3000 || rep.L2 != 2 || rep.Fingerprint.SHA256 != ds.SHA256 {
		t.Errorf("report %+v reproduces %+v", rep, rep.Reproduces)
	}
	// The saved set trains to the same fingerprint from the file.
	out.Reset()
	if err := runTrain(context.Background(), []string{"--data=" + save, "--json", "--l2=2"}, slog.New(slog.NewTextHandler(io.Discard, nil)), &out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Fingerprint.SHA256 != ds.SHA256 {
		t.Errorf("saved file fingerprint %s, recorded %s", rep.Fingerprint.SHA256, ds.SHA256)
	}
}

// TestTrainOnTestdataMatchesScikitLearn: `driftline train --data --json`
// on testdata/train reaches scikit-learn's holdout AUC on the same split.
func TestTrainOnTestdataMatchesScikitLearn(t *testing.T) {
	out, err := exec.Command(binary, "train", "--data", filepath.Join("..", "..", "testdata", "train", "purchase_20k.jsonl"), "--json").Output()
	if err != nil {
		t.Fatal(err)
	}
	var rep trainReport
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	// testdata/train/sklearn_reference.json: holdout_roc_auc.
	if d := rep.AUC - 0.8946430895269888; d < -1e-5 || d > 1e-5 || rep.Rows != 20000 || rep.HoldoutRows != 4000 || len(rep.Fingerprint.SHA256) != 64 || rep.RowsPerSec <= 0 {
		t.Errorf("report %+v", rep)
	}
}

// TestTrainContractExitCodes runs `driftline train --contract` as the
// worker runs a contract trainer: model file out on success, exit 4 on a
// dataset that cannot be trained on, 2 on bad usage.
func TestTrainContractExitCodes(t *testing.T) {
	dir := t.TempDir()
	data, model := filepath.Join(dir, "d.jsonl"), filepath.Join(dir, "m.json")
	rows := readTrainRows(t)[:1000]
	f, err := os.Create(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := trainers.WriteLabels(f, rows); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if out, err := exec.Command(binary, "train", "--contract", "--data", data, "--out", model, "--l2", "1").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var v schemas.ModelVersion
	b, err := os.ReadFile(model)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil || v.Backend != trainers.BackendCPU || len(v.Weights) != 30 || len(v.Std) != 30 || v.L2 != 1 {
		t.Errorf("model file %s (%v)", b, err)
	}
	one := filepath.Join(dir, "one.jsonl")
	if err := os.WriteFile(one, []byte("{\"values\":[1,2],\"label\":1}\n{\"values\":[2,3],\"label\":1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"--data", one, "--out", model}, trainers.ExitBadData},
		{[]string{"--out", model}, trainers.ExitUsage},
	} {
		err := exec.Command(binary, append([]string{"train", "--contract"}, c.args...)...).Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != c.code {
			t.Errorf("train --contract %v: %v, want exit %d", c.args, err, c.code)
		}
	}
}
