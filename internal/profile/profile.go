package profile

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"

	"github.com/driftline/driftline/schemas"
)

// DefaultBins is the number of bins Build and BuildOne aim for when bins <= 0.
const DefaultBins = 10

// ScoreName is the Name of the score's profile built by BuildProfile.
const ScoreName = "score"

// BuildProfile returns the reference profile of a training set: one
// FeatureProfile per column of X (named by names, see Build) and one of the
// model's scores on the same rows, named ScoreName.
func BuildProfile(names []string, X [][]float64, scores []float64, bins int) schemas.Profile {
	return schemas.Profile{
		Rows:     len(X),
		Features: Build(names, X, bins),
		Score:    BuildOne(ScoreName, scores, bins),
	}
}

// Build returns a binned profile of every column of X, as BuildOne does for
// one column. Column j is named names[j]; every row of X must have at least
// len(names) values. Columns are profiled concurrently on up to
// runtime.GOMAXPROCS goroutines.
func Build(names []string, X [][]float64, bins int) []schemas.FeatureProfile {
	out := make([]schemas.FeatureProfile, len(names))
	workers := min(runtime.GOMAXPROCS(0), len(names))
	var wg sync.WaitGroup
	cols := make(chan int)
	for range workers {
		wg.Go(func() {
			col := make([]float64, len(X))
			for j := range cols {
				for i, row := range X {
					col[i] = row[j]
				}
				out[j] = BuildOne(names[j], col, bins)
			}
		})
	}
	for j := range names {
		cols <- j
	}
	close(cols)
	wg.Wait()
	return out
}

// BuildOne returns the binned profile of values (which it does not modify).
// bins <= 0 means DefaultBins.
//
//   - If the finite values take at most bins distinct values v_0 < … < v_k,
//     the edges are v_0 … v_{k-1}: one bin per distinct value, so a 0/1
//     indicator gets the two bins x <= 0 and x > 0.
//   - Otherwise the candidate edges are the lower empirical quantiles
//     q_j = v_(⌈j·n/bins⌉) (the ⌈j·n/bins⌉-th smallest finite value) for
//     j = 1 … bins-1; repeated candidates and any equal to the maximum are
//     dropped, so there are at most bins bins, none of them empty.
//
// Fractions are the shares of all values per bin as Bin assigns them, and
// sum to 1. NaN and ±Inf never become edges (a profile must survive JSON);
// they are counted where Bin puts them: -Inf in the first bin, +Inf and NaN
// in the last. With no values at all, or only one distinct finite value,
// the profile is a single bin with fraction 1.
//
// It also records what the online drift statistics need: Rows, Mean, Std,
// Distinct and, for a feature with more than CategoricalMaxDistinct
// distinct values, a DDSketch of the values (BuildSketch).
func BuildOne(name string, values []float64, bins int) schemas.FeatureProfile {
	return buildOne(name, values, bins, true)
}

// BuildBins is BuildOne without the sketch, mean and standard deviation:
// only the bins, for callers that need nothing else (the offline report).
func BuildBins(name string, values []float64, bins int) schemas.FeatureProfile {
	return buildOne(name, values, bins, false)
}

func buildOne(name string, values []float64, bins int, full bool) schemas.FeatureProfile {
	if bins <= 0 {
		bins = DefaultBins
	}
	v := make([]float64, 0, len(values))
	for _, x := range values {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	slices.Sort(v)

	p := schemas.FeatureProfile{Name: name, Edges: []float64{}, Rows: len(values)}
	if n := len(v); n > 0 {
		p.Distinct = countDistinct(v, max(bins, CategoricalMaxDistinct)+1)
		if full {
			p.Mean, p.Std = meanStd(v)
			if p.Distinct > CategoricalMaxDistinct {
				p.Sketch = BuildSketch(v)
			}
		}
		if distinct := p.Distinct; distinct <= bins {
			for i, x := range v[:n-1] {
				if x != v[i+1] {
					p.Edges = append(p.Edges, x)
				}
			}
		} else {
			for j := 1; j < bins; j++ {
				e := v[(j*n+bins-1)/bins-1]
				if e >= v[n-1] {
					break
				}
				if k := len(p.Edges); k == 0 || e > p.Edges[k-1] {
					p.Edges = append(p.Edges, e)
				}
			}
		}
	}

	p.Fractions = make([]float64, len(p.Edges)+1)
	if len(values) == 0 {
		p.Fractions[0] = 1
		return p
	}
	for _, x := range values {
		p.Fractions[Bin(&p, x)]++
	}
	for i := range p.Fractions {
		p.Fractions[i] /= float64(len(values))
	}
	return p
}

// CategoricalMaxDistinct: a feature with at most this many distinct values
// is categorical (Evidently's switch); its bins are its frequency table and
// it gets no sketch.
const CategoricalMaxDistinct = 5

// SketchAccuracy is the relative accuracy of the reference sketches: a
// value's bucket holds values within 0.5% of it (measured against SciPy in
// monitors/column_test.go: normalised Wasserstein within 1e-3).
const SketchAccuracy = 0.005

// Index mappings of schemas.Sketch.
const (
	MappingCubic       = "cubic"
	MappingLogarithmic = "logarithmic"
)

// Mapping returns the index mapping of a stored sketch.
func Mapping(s *schemas.Sketch) (mapping.IndexMapping, error) {
	switch s.Mapping {
	case MappingCubic:
		return mapping.NewCubicallyInterpolatedMapping(s.RelativeAccuracy)
	case MappingLogarithmic, "":
		return mapping.NewLogarithmicMapping(s.RelativeAccuracy)
	}
	return nil, fmt.Errorf("unknown sketch mapping %q", s.Mapping)
}

// BuildSketch returns a DDSketch (sketches-go, cubically interpolated
// mapping of relative accuracy SketchAccuracy, which needs no logarithm per
// value, and unbounded dense stores) of the finite values of v, in the
// compact form stored in a profile.
func BuildSketch(v []float64) *schemas.Sketch {
	m, err := mapping.NewCubicallyInterpolatedMapping(SketchAccuracy)
	if err != nil {
		panic(err) // a constant accuracy in (0, 1) cannot fail
	}
	sk := ddsketch.NewDDSketchFromStoreProvider(m, store.DenseStoreConstructor)
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			_ = sk.Add(x) // finite values within the mapping's range always add
		}
	}
	out := &schemas.Sketch{
		Mapping:          MappingCubic,
		RelativeAccuracy: SketchAccuracy,
		Zero:             sk.GetZeroCount(),
		Positive:         storeBins(sk.GetPositiveValueStore()),
		Negative:         storeBins(sk.GetNegativeValueStore()),
	}
	var finite []float64
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = min(lo, x), max(hi, x)
			if len(finite) <= MaxExactValues {
				finite = append(finite, x)
			}
		}
	}
	if lo <= hi {
		out.Min, out.Max = &lo, &hi
	}
	if len(finite) > 0 && len(finite) <= MaxExactValues && jsonBytes(finite) <= MaxExactBytes {
		slices.Sort(finite)
		out.Values = finite
	}
	return out
}

// jsonBytes is about the length of v as a JSON array (shortest float
// forms and commas).
func jsonBytes(v []float64) int {
	var buf [32]byte
	n := 2
	for _, x := range v {
		n += len(strconv.AppendFloat(buf[:0], x, 'g', -1, 64)) + 1
	}
	return n
}

// MaxExactValues bounds the values a sketch keeps verbatim
// (schemas.Sketch.Values): a reference of at most this many rows is judged
// by KS (Evidently's switch, monitors.SmallSampleRows), and its empirical
// CDF climbs in steps of at least 1/MaxExactValues, more than the 1e-3 a
// sketch may be off; with the values the monitor's KS is SciPy's. Values
// are also kept only while their JSON stays within MaxExactBytes (1000
// prices with cents or integers fit; 1000 full-precision float64s do not,
// and such a feature keeps its sketch and range alone), so a version
// record grows by at most MaxExactBytes per feature, and only for a small
// training set.
const (
	MaxExactValues = 1000
	MaxExactBytes  = 16 << 10
)

func storeBins(st store.Store) schemas.SketchBins {
	lo, err := st.MinIndex()
	if err != nil {
		return schemas.SketchBins{Counts: []float64{}}
	}
	hi, _ := st.MaxIndex()
	b := schemas.SketchBins{Offset: lo, Counts: make([]float64, hi-lo+1)}
	st.ForEach(func(i int, c float64) bool {
		b.Counts[i-lo] += c
		return false
	})
	return b
}

// Sketch returns the DDSketch of a stored profile sketch, for quantiles
// and merges.
func Sketch(s *schemas.Sketch) (*ddsketch.DDSketch, error) {
	m, err := Mapping(s)
	if err != nil {
		return nil, fmt.Errorf("cannot build sketch: %w", err)
	}
	sk := ddsketch.NewDDSketchFromStoreProvider(m, store.DenseStoreConstructor)
	for i, c := range s.Positive.Counts {
		if c > 0 {
			sk.GetPositiveValueStore().AddWithCount(s.Positive.Offset+i, c)
		}
	}
	for i, c := range s.Negative.Counts {
		if c > 0 {
			sk.GetNegativeValueStore().AddWithCount(s.Negative.Offset+i, c)
		}
	}
	if s.Zero > 0 {
		if err := sk.AddWithCount(0, s.Zero); err != nil {
			return nil, fmt.Errorf("cannot build sketch: %w", err)
		}
	}
	return sk, nil
}

// meanStd returns the mean and population standard deviation of v.
func meanStd(v []float64) (mean, std float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	var ss float64
	for _, x := range v {
		ss += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(ss / float64(len(v)))
}

// countDistinct returns the number of distinct values of the sorted slice v,
// stopping once it reaches limit.
func countDistinct(v []float64, limit int) int {
	d := 1
	for i := 1; i < len(v) && d < limit; i++ {
		if v[i] != v[i-1] {
			d++
		}
	}
	return d
}

// Bin returns the index of the bin of p that holds x: the smallest i with
// x <= p.Edges[i], or len(p.Edges) when x is above every edge (bin i holds
// Edges[i-1] < x <= Edges[i]). NaN falls in the last bin. It is a binary
// search over Edges and does not allocate.
func Bin(p *schemas.FeatureProfile, x float64) int {
	e := p.Edges
	lo, hi := 0, len(e)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if x <= e[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Validate reports whether p is usable with Bin and a drift statistic:
// finite, strictly increasing edges, one more fraction than edges, and
// fractions that are finite, non-negative and sum to 1 (within 1e-6). Use it
// on profiles read from the registry.
func Validate(p *schemas.FeatureProfile) error {
	if len(p.Fractions) != len(p.Edges)+1 {
		return fmt.Errorf("profile %q: %d edges need %d fractions, have %d",
			p.Name, len(p.Edges), len(p.Edges)+1, len(p.Fractions))
	}
	for i, e := range p.Edges {
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return fmt.Errorf("profile %q: edge %d is %g", p.Name, i, e)
		}
		if i > 0 && !(e > p.Edges[i-1]) {
			return fmt.Errorf("profile %q: edges not increasing at %d (%g after %g)", p.Name, i, e, p.Edges[i-1])
		}
	}
	var sum float64
	for i, f := range p.Fractions {
		if !(f >= 0) || math.IsInf(f, 0) {
			return fmt.Errorf("profile %q: fraction %d is %g", p.Name, i, f)
		}
		sum += f
	}
	if math.Abs(sum-1) > 1e-6 {
		return fmt.Errorf("profile %q: fractions sum to %g, not 1", p.Name, sum)
	}
	if s := p.Sketch; s != nil {
		if _, err := Mapping(s); err != nil {
			return fmt.Errorf("profile %q: %w", p.Name, err)
		}
		if !(s.RelativeAccuracy > 0 && s.RelativeAccuracy < 1) {
			return fmt.Errorf("profile %q: sketch relative accuracy %g not in (0, 1)", p.Name, s.RelativeAccuracy)
		}
		if n := len(s.Positive.Counts) + len(s.Negative.Counts); n > MaxSketchBuckets {
			return fmt.Errorf("profile %q: sketch has %d buckets, at most %d are monitored", p.Name, n, MaxSketchBuckets)
		}
		total := s.Zero
		for _, c := range append(slices.Clip(s.Positive.Counts), s.Negative.Counts...) {
			if !(c >= 0) || math.IsInf(c, 0) {
				return fmt.Errorf("profile %q: sketch count %g", p.Name, c)
			}
			total += c
		}
		if !(s.Zero >= 0) || !(total > 0) {
			return fmt.Errorf("profile %q: sketch holds no values", p.Name)
		}
		if err := validateExact(s, total); err != nil {
			return fmt.Errorf("profile %q: %w", p.Name, err)
		}
	}
	return nil
}

// validateExact checks the optional exact parts of a sketch holding total
// values: finite Min <= Max, given together, and Values sorted, finite,
// within [Min, Max] and as many as the sketch counts.
func validateExact(s *schemas.Sketch, total float64) error {
	if (s.Min == nil) != (s.Max == nil) {
		return errors.New("sketch has only one of min and max")
	}
	if s.Min != nil {
		lo, hi := *s.Min, *s.Max
		if math.IsNaN(lo) || math.IsInf(lo, 0) || math.IsNaN(hi) || math.IsInf(hi, 0) || lo > hi {
			return fmt.Errorf("sketch min %g, max %g", lo, hi)
		}
	}
	if len(s.Values) == 0 {
		return nil
	}
	if len(s.Values) > MaxExactValues {
		return fmt.Errorf("sketch keeps %d values, at most %d", len(s.Values), MaxExactValues)
	}
	if math.Abs(float64(len(s.Values))-total) > 0.5 {
		return fmt.Errorf("sketch keeps %d values but counts %g", len(s.Values), total)
	}
	for i, x := range s.Values {
		if math.IsNaN(x) || math.IsInf(x, 0) || (i > 0 && x < s.Values[i-1]) {
			return fmt.Errorf("sketch values not sorted and finite at %d (%g)", i, x)
		}
	}
	if s.Min != nil && (s.Values[0] != *s.Min || s.Values[len(s.Values)-1] != *s.Max) {
		return fmt.Errorf("sketch values span [%g, %g], min and max say [%g, %g]",
			s.Values[0], s.Values[len(s.Values)-1], *s.Min, *s.Max)
	}
	return nil
}

// MaxSketchBuckets bounds the buckets of a profile sketch the monitor
// accepts (its window keeps a count per bucket): at 1% accuracy, 4096
// buckets cover values over 35 orders of magnitude.
const MaxSketchBuckets = 4096

// Segment dimensions of schemas.Segments.
const (
	DimDevice   = "device"
	DimCountry  = "country"
	DimReferrer = "referrer"
)

// SegmentValue returns the value of dimension dim in s ("" when absent or
// dim is unknown).
func SegmentValue(s *schemas.Segments, dim string) string {
	switch dim {
	case DimDevice:
		return s.Device
	case DimCountry:
		return s.Country
	case DimReferrer:
		return s.Referrer
	}
	return ""
}

// BuildSegments returns the reference profile of every segment (each
// value of each of dims among segs, row i's segments being segs[i]) that
// holds at least minRows rows, as BuildProfile builds the overall one; the
// result is ordered by dimension, then value. Trainers store it in
// Profile.Segments so the monitor compares each segment with its own
// training distribution.
func BuildSegments(names []string, X [][]float64, scores []float64, segs []schemas.Segments, dims []string, minRows, bins int) []schemas.SegmentProfile {
	var out []schemas.SegmentProfile
	for _, dim := range dims {
		rows := map[string][]int{}
		for i := range segs {
			if v := SegmentValue(&segs[i], dim); v != "" {
				rows[v] = append(rows[v], i)
			}
		}
		values := make([]string, 0, len(rows))
		for v, idx := range rows {
			if len(idx) >= minRows {
				values = append(values, v)
			}
		}
		slices.Sort(values)
		for _, v := range values {
			idx := rows[v]
			x := make([][]float64, len(idx))
			sc := make([]float64, len(idx))
			for j, i := range idx {
				x[j], sc[j] = X[i], scores[i]
			}
			p := BuildProfile(names, x, sc, bins)
			out = append(out, schemas.SegmentProfile{Segment: dim + "=" + v, Rows: p.Rows, Features: p.Features, Score: p.Score})
		}
	}
	return out
}
