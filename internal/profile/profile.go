package profile

import (
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"

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
func BuildOne(name string, values []float64, bins int) schemas.FeatureProfile {
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

	p := schemas.FeatureProfile{Name: name, Edges: []float64{}}
	if n := len(v); n > 0 {
		if distinct := countDistinct(v, bins+1); distinct <= bins {
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
	return nil
}
