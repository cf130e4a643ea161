package monitors

import (
	"fmt"
	"math"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// column is the online state of one feature (or of the score) in a drift
// window: counts of the window's values in the reference profile's bins
// (PSI, Jensen–Shannon, chi-square) and, when the profile has a sketch, in
// the sketch's buckets (KS, Wasserstein). Adding or removing a value costs
// a binary search over at most 256 edges and one logarithm; evaluating
// costs one pass over the bins and buckets, independent of the window size.
type column struct {
	ref       *schemas.FeatureProfile
	method    Method
	threshold float64
	bins      []int
	g         *grid // nil: the profile has no sketch
	cells     []int
	tailLo    float64          // Σ of how far underflow values lie below the lowest bucket
	tailHi    float64          // Σ of how far overflow values lie above the highest
	gauge     prometheus.Gauge // driftline_monitor_drift of this column
	psiGauge  prometheus.Gauge // driftline_monitor_psi, all traffic only
	key       string           // dedup key, set at the first evaluation
	psiKey    string           // dedup key of its PSI report, when PSI is not its method
}

// grid lays a reference sketch's buckets out in value order: cell 0 is an
// underflow cell, then the negative buckets (most negative first), the
// zero bucket, the positive buckets, and an overflow cell. rep holds each
// interior cell's representative value (the middle of the bucket), refCDF
// the reference's cumulative share at the end of each cell.
type grid struct {
	m              mapping.IndexMapping
	minIndexable   float64
	negOff, negN   int
	posOff, posN   int
	rep            []float64
	refCDF         []float64
	refRows        int
	refStd         float64
	zero, overflow int // cell indices
	// The reference's exact range when the profile keeps it (zero
	// otherwise): the interpolation inside a bucket stops at them.
	hasRange bool
	rangeLo  float64
	rangeHi  float64
	exact    []float64 // the sorted reference values, when kept
}

func newGrid(p *schemas.FeatureProfile) (*grid, error) {
	s := p.Sketch
	m, err := profile.Mapping(s)
	if err != nil {
		return nil, fmt.Errorf("cannot map sketch of %s: %w", p.Name, err)
	}
	g := &grid{
		m: m, minIndexable: m.MinIndexableValue(),
		negOff: s.Negative.Offset, negN: len(s.Negative.Counts),
		posOff: s.Positive.Offset, posN: len(s.Positive.Counts),
		refStd: p.Std,
	}
	g.zero = g.negN + 1
	g.overflow = g.zero + g.posN + 1
	cells := g.overflow + 1
	g.rep = make([]float64, cells)
	counts := make([]float64, cells)
	for i := range g.negN { // cell zero-1-i holds negative bucket negOff+i
		g.rep[g.zero-1-i] = -mid(m, g.negOff+i)
		counts[g.zero-1-i] = s.Negative.Counts[i]
	}
	counts[g.zero] = s.Zero
	for i := range g.posN {
		g.rep[g.zero+1+i] = mid(m, g.posOff+i)
		counts[g.zero+1+i] = s.Positive.Counts[i]
	}
	g.rep[0], g.rep[g.overflow] = g.rep[1], g.rep[g.overflow-1]
	var total float64
	for _, c := range counts {
		total += c
	}
	g.refCDF = make([]float64, cells)
	var cum float64
	for i, c := range counts {
		cum += c
		g.refCDF[i] = cum / total
	}
	g.refRows = int(math.Round(total))
	if s.Min != nil && s.Max != nil {
		g.hasRange, g.rangeLo, g.rangeHi = true, *s.Min, *s.Max
	}
	if len(s.Values) > 0 {
		g.exact = s.Values
	}
	return g, nil
}

// mid is the middle of bucket i, where a value of it is on average.
func mid(m mapping.IndexMapping, i int) float64 {
	return (m.LowerBound(i) + m.LowerBound(i+1)) / 2
}

// cell returns the cell of v. Values beyond the reference's buckets go to
// the underflow or overflow cell; a value between zero and the reference's
// smallest bucket of its sign goes to that bucket.
func (g *grid) cell(v float64) int {
	switch {
	case v >= g.minIndexable:
		if g.posN == 0 {
			return g.overflow
		}
		i := g.m.Index(v) - g.posOff
		if i >= g.posN {
			return g.overflow
		}
		return g.zero + 1 + max(i, 0)
	case v <= -g.minIndexable:
		if g.negN == 0 {
			return 0
		}
		i := g.m.Index(-v) - g.negOff
		if i >= g.negN {
			return 0
		}
		return g.zero - 1 - max(i, 0)
	case v == v: // finite, near zero
		return g.zero
	default: // NaN
		return g.overflow
	}
}

func newColumn(p *schemas.FeatureProfile, method Method, threshold float64) (*column, error) {
	if err := profile.Validate(p); err != nil {
		return nil, err
	}
	if len(p.Fractions) > 256 {
		return nil, fmt.Errorf("reference profile of %s has %d bins, at most 256 fit the window", p.Name, len(p.Fractions))
	}
	c := &column{ref: p, method: method, threshold: threshold, bins: make([]int, len(p.Fractions))}
	if p.Sketch != nil {
		g, err := newGrid(p)
		if err != nil {
			return nil, err
		}
		c.g, c.cells = g, make([]int, len(g.rep))
	}
	return c, nil
}

// slot is one value of the window with the bin and cell it was counted
// in, so that removing it costs no search.
type slot struct {
	v    float64
	cell uint16
	bin  uint8
}

// add counts v and returns its slot.
func (c *column) add(v float64) slot {
	b := profile.Bin(c.ref, v)
	c.bins[b]++
	s := slot{v: v, bin: uint8(b)}
	if c.g == nil {
		return s
	}
	k := c.g.cell(v)
	c.cells[k]++
	s.cell = uint16(k)
	switch {
	case k == 0 && v < c.g.rep[0]:
		c.tailLo += c.g.rep[0] - v
	case k == c.g.overflow && v > c.g.rep[k]:
		c.tailHi += v - c.g.rep[k]
	}
	return s
}

// remove uncounts a slot add returned.
func (c *column) remove(s *slot) {
	c.bins[s.bin]--
	if c.g == nil {
		return
	}
	k := int(s.cell)
	c.cells[k]--
	switch {
	case k == 0 && s.v < c.g.rep[0]:
		c.tailLo -= c.g.rep[0] - s.v
	case k == c.g.overflow && s.v > c.g.rep[k]:
		c.tailHi -= s.v - c.g.rep[k]
	}
}

// fractions writes the window's bin shares into dst.
func (c *column) fractions(dst []float64, n int) []float64 {
	dst = dst[:0]
	for _, k := range c.bins {
		dst = append(dst, float64(k)/float64(n))
	}
	return dst
}

// ksStatistic is the KS distance between the reference sketch's CDF and
// the window's, both taken at the end of every bucket: the exact statistic
// of the bucketed samples, which differs from that of the raw samples by
// at most the largest share one bucket holds on either side.
func (c *column) ksStatistic(n int) float64 {
	var d float64
	cum := 0
	for i, k := range c.cells {
		cum += k
		d = max(d, math.Abs(c.g.refCDF[i]-float64(cum)/float64(n)))
	}
	return d
}

// wasserstein is the first Wasserstein distance between the reference
// sketch and the window, every value at its bucket's representative (within
// the sketch's relative accuracy of it) and the window's values beyond the
// reference's range at their own place, divided by the reference's
// standard deviation floored at WassersteinNormFloor (Evidently's normed
// form): ∫|F_ref - F_cur| dx as a sum over the gaps between buckets.
func (c *column) wasserstein(n int) float64 {
	var w float64
	cum := 0
	last := len(c.cells) - 1
	for i, k := range c.cells[:last] {
		cum += k
		w += math.Abs(c.g.refCDF[i]-float64(cum)/float64(n)) * (c.g.rep[i+1] - c.g.rep[i])
	}
	w += (c.tailLo + c.tailHi) / float64(n)
	return w / max(c.g.refStd, WassersteinNormFloor)
}

// defaultMethod is Evidently's choice for a reference profile (see the
// offline.go table): a test for references of up to SmallSampleRows rows, a
// distance above; KS and Wasserstein for numeric features with a sketch,
// chi-square and Jensen–Shannon for categorical ones (Evidently's z-test
// for two categories is chi-square here: the same test, p-values equal). A
// profile written before sketches existed (no Distinct) is judged by PSI.
func defaultMethod(p *schemas.FeatureProfile, refRows int) Method {
	switch {
	case p.Distinct == 0:
		return MethodPSI
	case p.Sketch == nil && refRows <= SmallSampleRows:
		return MethodChiSquare
	case p.Sketch == nil:
		return MethodJensenShannon
	case refRows <= SmallSampleRows:
		return MethodKS
	default:
		return MethodWasserstein
	}
}

// refRowsOr is the reference's row count from its sketch, or rows without
// one.
func (g *grid) refRowsOr(rows int) int {
	if g == nil {
		return rows
	}
	return g.refRows
}

// Online default thresholds of the distances (see Config.Thresholds).
const (
	OnlineWassersteinThreshold   = 0.2
	OnlineJensenShannonThreshold = 0.15
)
