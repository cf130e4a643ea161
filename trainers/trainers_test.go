package trainers

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

var t0 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// labelled draws n labelled vectors whose outcome follows
// sigmoid(sign*2*x0 + x1), served one per minute from start.
func labelled(rng *rand.Rand, n int, sign float64, start time.Time) []schemas.Label {
	out := make([]schemas.Label, n)
	for i := range out {
		x := []float64{rng.NormFloat64(), rng.NormFloat64(), rng.Float64()}
		y := 0
		if rng.Float64() < 1/(1+math.Exp(-(sign*2*x[0]+x[1]))) {
			y = 1
		}
		out[i] = schemas.Label{Model: "m", EventTime: start.Add(time.Duration(i) * time.Minute), Values: x, Label: y,
			Reason: map[int]string{0: schemas.LabelReasonHorizon, 1: schemas.LabelReasonPurchase}[y]}
	}
	return out
}

var names = []string{"a", "b", "noise"}

func TestTrainBootstrapPassesAndRecordsEverything(t *testing.T) {
	rows := labelled(rand.New(rand.NewPCG(1, 1)), 3000, 1, t0)
	res, err := Train(TrainConfig{}, names, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Version
	if !res.Passed || !v.Metrics.GatePassed {
		t.Fatal("a bootstrap version must pass the gate")
	}
	if v.Metrics.AUC < 0.8 || v.Metrics.HoldoutRows != 600 || v.Rows != 3000 {
		t.Errorf("metrics = %+v rows %d", v.Metrics, v.Rows)
	}
	if len(v.Weights) != 3 || v.Weights[0] < 1 || math.Abs(v.Weights[2]) > 0.2 {
		t.Errorf("weights %v: want a strong first and a negligible noise weight", v.Weights)
	}
	if len(v.Reference.Features) != 3 || len(v.Reference.Score.Fractions) == 0 || !v.Training.From.Equal(t0) {
		t.Errorf("reference profile or training window missing: %+v %+v", v.Reference, v.Training)
	}
}

func TestGateKeepsABetterChampion(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	good, err := Train(TrainConfig{}, names, labelled(rng, 3000, 1, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	champ := good.Version
	// A challenger trained on data where the relation flipped is worse on a
	// holdout drawn from the champion's world ...
	mixed := append(labelled(rng, 2400, -1, t0), labelled(rng, 600, 1, t0.Add(3000*time.Minute))...)
	res, err := Train(TrainConfig{}, names, mixed, &champ)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed || res.Version.Metrics.ChampionAUC <= res.Version.Metrics.AUC {
		t.Errorf("gate passed a worse challenger: %+v", res.Version.Metrics)
	}
	// ... and better on one drawn after the flip.
	flipped := labelled(rng, 3000, -1, t0)
	res, err = Train(TrainConfig{}, names, flipped, &champ)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed || res.Version.Metrics.AUC < res.Version.Metrics.ChampionAUC+0.2 {
		t.Errorf("gate rejected a better challenger: %+v", res.Version.Metrics)
	}
}

func TestTrainNeedsData(t *testing.T) {
	if _, err := Train(TrainConfig{}, names, labelled(rand.New(rand.NewPCG(3, 3)), 40, 1, t0), nil); !errors.Is(err, ErrNotEnoughData) {
		t.Errorf("err = %v, want ErrNotEnoughData", err)
	}
}

func TestBufferHandsOutOnlyTheCompleteWindow(t *testing.T) {
	b := newLabelBuffer(100)
	add := func(min int, reason string) {
		b.add(schemas.Label{EventTime: t0.Add(time.Duration(min) * time.Minute), Reason: reason}, 0)
	}
	add(0, schemas.LabelReasonHorizon)
	add(5, schemas.LabelReasonPurchase)
	add(10, schemas.LabelReasonHorizon) // every outcome up to 10:10 is known
	add(40, schemas.LabelReasonPurchase)
	add(45, schemas.LabelReasonPurchase) // newest: only buyers are known yet
	if n := b.countCompleteSince(time.Time{}); n != 3 {
		t.Errorf("complete window holds %d rows, want 3", n)
	}
	if rows := b.completeSince(t0.Add(5 * time.Minute)); len(rows) != 2 {
		t.Errorf("complete rows since 10:05 = %d, want 2", len(rows))
	}
	// A second partition that has labelled no negative yet holds the
	// window back: its outcomes are not known.
	b.add(schemas.Label{EventTime: t0, Reason: schemas.LabelReasonPurchase}, 1)
	if n := b.countCompleteSince(time.Time{}); n != 0 {
		t.Errorf("with a partition lagging, complete window holds %d rows, want 0", n)
	}
	b.add(schemas.Label{EventTime: t0.Add(10 * time.Minute), Reason: schemas.LabelReasonHorizon}, 1)
	if n := b.countCompleteSince(time.Time{}); n != 5 {
		t.Errorf("with both partitions known to 10:10, complete window holds %d rows, want 5", n)
	}
	// The ring drops the oldest row.
	for i := range 100 {
		add(50+i, schemas.LabelReasonHorizon)
		b.add(schemas.Label{EventTime: t0.Add(time.Duration(50+i) * time.Minute), Reason: schemas.LabelReasonHorizon}, 1)
	}
	if n, first := b.len(), b.completeSince(time.Time{})[0].EventTime; n != 100 || !first.Equal(t0.Add(100*time.Minute)) {
		t.Errorf("after overflow len %d oldest %s", n, first)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{Features: names}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, bad := range []Config{{}, {Features: names, MinRows: 10}, {Features: names, MinRows: 500, BufferRows: 100}} {
		bad.setDefaults()
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", bad)
		}
	}
}
