package trainers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
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
	segs := make([]schemas.Segments, len(train))
	for i := range train {
		segs[i] = train[i].Segments
	}
	v.Reference.Segments = compactSegments(profile.BuildSegments(names, X, scores, segs, SegmentDims, SegmentMinRows, cfg.Bins))
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

// SegmentDims are the segment dimensions a version's reference profile is
// built for, SegmentMinRows the training rows a segment value needs to get
// its own profile (a monitor takes a smaller segment's reference from its
// first window after go-live instead).
var SegmentDims = []string{"device", "country", "referrer"}

// SegmentMinRows: see SegmentDims.
const SegmentMinRows = 500

// MaxSegmentProfiles caps the segment profiles stored on a version (the
// largest segments are kept), so a training set with many segment values
// cannot push the version record towards Kafka's 1 MB message limit.
const MaxSegmentProfiles = 24

// compactSegments keeps the registry record small: segment profiles carry
// their bins, counts and moments but no quantile sketch (a sketch per
// feature per segment is most of a record's bytes; without one the monitor
// judges a segment by chi-square or Jensen-Shannon on the bins, see
// monitors.defaultMethod), and at most MaxSegmentProfiles of them, the
// largest.
func compactSegments(segs []schemas.SegmentProfile) []schemas.SegmentProfile {
	for i := range segs {
		for j := range segs[i].Features {
			compactProfile(&segs[i].Features[j])
		}
		compactProfile(&segs[i].Score)
	}
	if len(segs) > MaxSegmentProfiles {
		bySize := slices.Clone(segs)
		slices.SortStableFunc(bySize, func(a, b schemas.SegmentProfile) int { return b.Rows - a.Rows })
		keep := map[string]bool{}
		for _, s := range bySize[:MaxSegmentProfiles] {
			keep[s.Segment] = true
		}
		segs = slices.DeleteFunc(segs, func(s schemas.SegmentProfile) bool { return !keep[s.Segment] })
	}
	return segs
}

// compactProfile drops a segment profile's sketch and rounds its numbers
// to 7 significant digits (half the JSON of a float64 in full; the bins
// move by a relative 1e-7), unless the rounded profile would not validate
// (edges that no longer increase, fractions that no longer sum to 1).
func compactProfile(p *schemas.FeatureProfile) {
	p.Sketch = nil
	r := *p
	r.Edges, r.Fractions = slices.Clone(p.Edges), slices.Clone(p.Fractions)
	for i := range r.Edges {
		r.Edges[i] = round7(r.Edges[i])
	}
	for i := range r.Fractions {
		r.Fractions[i] = round7(r.Fractions[i])
	}
	r.Mean, r.Std = round7(r.Mean), round7(r.Std)
	if profile.Validate(&r) == nil {
		*p = r
	}
}

// round7 rounds x to 7 significant digits.
func round7(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	f, err := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 7, 64), 64)
	if err != nil {
		return x
	}
	return f
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
