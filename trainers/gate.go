package trainers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/driftline/driftline/internal/accuracy"
	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// ErrNotEnoughData is returned when a training set is too small to train
// and gate a model.
var ErrNotEnoughData = fmt.Errorf("not enough labelled vectors")

// TrainConfig is how a challenger is trained and judged.
type TrainConfig struct {
	// L2 penalty (1/C of scikit-learn). Default 1.
	L2 float64 `yaml:"l2"`
	// HoldoutFraction is the most recent share of the training set, by
	// event time, held out to compare challenger and champion. Default 0.2.
	HoldoutFraction float64 `yaml:"holdout_fraction"`
	// MinGain is how much the challenger's holdout ROC AUC must exceed the
	// champion's for the alias to move. Default 0 (at least as good).
	MinGain float64 `yaml:"min_gain"`
	// Bins per feature in the reference profile. Default 10.
	Bins int `yaml:"bins"`
}

func (c *TrainConfig) setDefaults() {
	if c.L2 == 0 {
		c.L2 = 1
	}
	if c.HoldoutFraction == 0 {
		c.HoldoutFraction = 0.2
	}
	if c.Bins == 0 {
		c.Bins = 10
	}
}

// Result is a trained challenger with its gate decision.
type Result struct {
	Version schemas.ModelVersion
	Passed  bool
}

// Train fits a challenger on rows (labelled vectors, any order) with the Go
// CPU trainer; see TrainWith.
func Train(cfg TrainConfig, names []string, rows []schemas.Label, champion *schemas.ModelVersion) (*Result, error) {
	return TrainWith(context.Background(), cfg, CPU{}, names, rows, champion, "")
}

// TrainWith fits a challenger on rows (labelled vectors, any order) with a
// backend, scores it and the champion (nil for none) on the time-held-out
// slice, and fills a version record apart from its number and parent,
// including the dataset fingerprint (source as given) and the
// hyperparameters.
func TrainWith(ctx context.Context, cfg TrainConfig, backend Backend, names []string, rows []schemas.Label, champion *schemas.ModelVersion, source string) (*Result, error) {
	cfg.setDefaults()
	rows = slices.Clone(rows)
	sortRows(rows)
	nHold := int(float64(len(rows)) * cfg.HoldoutFraction)
	train, hold := rows[:len(rows)-nHold], rows[len(rows)-nHold:]
	if len(train) < 50 || len(hold) < 20 {
		return nil, fmt.Errorf("%w: %d rows (%d to train, %d to hold out)", ErrNotEnoughData, len(rows), len(train), len(hold))
	}
	X, y := matrix(train)
	fit, err := backend.Fit(ctx, cfg.L2, X, y)
	if err != nil {
		return nil, fmt.Errorf("cannot train challenger: %w", err)
	}
	m := fit.Model
	hX, hy := matrix(hold)
	auc, ll := evaluate(m, hX, hy)
	if math.IsNaN(auc) {
		return nil, fmt.Errorf("%w: the holdout slice has a single class", ErrNotEnoughData)
	}
	v := schemas.ModelVersion{
		Backend:   fit.Backend,
		Features:  slices.Clone(names),
		CreatedAt: time.Now().UTC(),
		Training:  schemas.Window{From: rows[0].EventTime, To: rows[len(rows)-1].EventTime},
		Rows:      len(rows),
		Hyperparameters: map[string]float64{
			"l2": cfg.L2, "holdout_fraction": cfg.HoldoutFraction, "min_gain": cfg.MinGain, "bins": float64(cfg.Bins),
		},
	}
	for k, hv := range fit.Hyperparameters {
		v.Hyperparameters[k] = hv
	}
	ds := Fingerprint(rows, source)
	v.Dataset = &ds
	m.FillVersion(&v)
	v.Reference = schemas.Profile{Rows: len(X), Features: profile.Build(names, X, cfg.Bins)}
	scores := make([]float64, len(X))
	for i, x := range X {
		scores[i] = m.Predict(x)
	}
	v.Reference.Score = profile.BuildOne("score", scores, cfg.Bins)
	v.Metrics = schemas.ModelMetrics{AUC: auc, LogLoss: ll, HoldoutRows: len(hold)}

	res := &Result{}
	switch champ, err := championModel(champion, names); {
	case err != nil:
		return nil, err
	case champ == nil:
		res.Passed = true
		v.Metrics.GateReason = "no champion: bootstrap version"
	default:
		v.Metrics.ChampionAUC, v.Metrics.ChampionLogLoss = evaluate(champ, hX, hy)
		res.Passed = auc >= v.Metrics.ChampionAUC+cfg.MinGain
		v.Metrics.GateReason = fmt.Sprintf("challenger holdout AUC %.4f vs champion %.4f (min gain %.4f)", auc, v.Metrics.ChampionAUC, cfg.MinGain)
	}
	v.Metrics.GatePassed = res.Passed
	res.Version = v
	return res, nil
}

func championModel(v *schemas.ModelVersion, names []string) (*logreg.Model, error) {
	if v == nil {
		return nil, nil
	}
	if !slices.Equal(v.Features, names) {
		return nil, fmt.Errorf("cannot gate against %s/v%d: its features differ from the training set's", v.Model, v.Version)
	}
	m, err := logreg.ModelFromVersion(v)
	if err != nil {
		return nil, fmt.Errorf("cannot load champion %s/v%d: %w", v.Model, v.Version, err)
	}
	return m, nil
}

func matrix(rows []schemas.Label) ([][]float64, []float64) {
	X := make([][]float64, len(rows))
	y := make([]float64, len(rows))
	for i, r := range rows {
		X[i], y[i] = r.Values, float64(r.Label)
	}
	return X, y
}

func evaluate(m *logreg.Model, X [][]float64, y []float64) (auc, logLoss float64) {
	s := make([]float64, len(X))
	for i, x := range X {
		s[i] = m.Predict(x)
	}
	return accuracy.AUC(s, y), accuracy.LogLoss(s, y)
}
