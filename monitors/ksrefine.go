package monitors

import (
	"math"
	"slices"
)

// The KS statistic of the bucketed samples (column.ksStatistic) compares
// the two CDFs only at bucket ends. Inside a bucket the window's empirical
// CDF climbs in steps of 1/n at its own values, and the sup of |F_ref -
// F_cur| can sit there: by up to the bucket's share of either sample
// (3.2e-3 against SciPy on a narrow normal with 0.5% buckets). The window
// keeps its raw values, so the current side is known exactly; only the
// reference is summarised. ksRefined walks the raw values of every bucket
// where the sup could hide (its end-point difference plus its share is
// above the bucketed D) and compares the exact current CDF with the
// reference CDF interpolated linearly across the bucket's value range
// (the reference uniform within one bucket of 0.5% relative width). What
// remains is the reference's own in-bucket fluctuation, which no summary
// of it keeps, and which a profile removes in two ways (since session 9):
// it stores the reference's exact min and max, where the interpolation
// stops (the CDF is 0 below the min and 1 from the max on, inside their
// buckets too), and a small reference's sorted values themselves, against
// which ksExact computes the raw samples' statistic, as SciPy does.

// bounds returns the value range [lo, hi] of interior cell k of the grid,
// and false for the underflow, zero and overflow cells (where the
// reference CDF is flat or a point mass: the sup is at an end already).
func (g *grid) bounds(k int) (lo, hi float64, ok bool) {
	switch {
	case k <= 0 || k >= g.overflow || k == g.zero:
		return 0, 0, false
	case k > g.zero: // positive bucket posOff + (k - zero - 1)
		i := g.posOff + k - g.zero - 1
		lo, hi = g.m.LowerBound(i), g.m.LowerBound(i+1)
	default: // negative bucket negOff + (zero - 1 - k), mirrored
		i := g.negOff + g.zero - 1 - k
		lo, hi = -g.m.LowerBound(i+1), -g.m.LowerBound(i)
	}
	if g.hasRange {
		lo, hi = max(lo, g.rangeLo), min(hi, g.rangeHi)
	}
	return lo, hi, true
}

// refAt is the reference CDF at x inside interior cell k of value range
// [lo, hi], refLo being the CDF below the cell: linear across the range,
// a step at lo when the range is a single value.
func refAt(refLo, refShare, lo, hi, x float64) float64 {
	if !(hi > lo) {
		if x >= hi {
			return refLo + refShare
		}
		return refLo
	}
	return refLo + refShare*min(max((x-lo)/(hi-lo), 0), 1)
}

// ksScratch is reused by every refined KS evaluation of a window.
type ksScratch struct {
	candidate []bool    // by cell
	vals      []float64 // raw values of the candidate cells
	cells     []uint16  // their cells, parallel to vals
	order     []int
}

// ksRefined is the KS statistic of column f of w against its reference
// sketch: the bucketed D, refined inside the buckets where it could be
// larger.
func (w *driftWindow) ksRefined(f int) float64 {
	c := w.cols[f]
	g := c.g
	if g.exact != nil {
		return w.ksExact(f)
	}
	n := float64(w.n)
	d := c.ksStatistic(w.n)
	s := &w.ksr
	if cap(s.candidate) < len(c.cells) {
		s.candidate = make([]bool, len(c.cells))
	}
	s.candidate = s.candidate[:len(c.cells)]
	clear(s.candidate)
	found := false
	cum := 0
	prevRef := 0.0
	for k, cnt := range c.cells {
		prevCur := float64(cum) / n
		cum += cnt
		refShare := g.refCDF[k] - prevRef
		if _, _, ok := g.bounds(k); ok && cnt > 0 && math.Abs(prevRef-prevCur)+max(refShare, float64(cnt)/n) > d {
			s.candidate[k], found = true, true
		}
		prevRef = g.refCDF[k]
	}
	if !found {
		return d
	}
	s.vals, s.cells = s.vals[:0], s.cells[:0]
	for i := range w.n {
		sl := &w.vals[i][f]
		if s.candidate[sl.cell] {
			s.vals = append(s.vals, sl.v)
			s.cells = append(s.cells, sl.cell)
		}
	}
	// Sort by cell, then value: cells are in value order, so this is value
	// order, and each cell's values are contiguous.
	s.order = s.order[:0]
	for i := range s.vals {
		s.order = append(s.order, i)
	}
	slices.SortFunc(s.order, func(a, b int) int {
		if s.cells[a] != s.cells[b] {
			return int(s.cells[a]) - int(s.cells[b])
		}
		switch {
		case s.vals[a] < s.vals[b]:
			return -1
		case s.vals[a] > s.vals[b]:
			return 1
		}
		return 0
	})
	// Walk the cells in order, keeping the window's count below each.
	below := 0
	k := 0
	for j := 0; j < len(s.order); {
		cell := int(s.cells[s.order[j]])
		for ; k < cell; k++ {
			below += c.cells[k]
		}
		lo, hi, _ := g.bounds(cell)
		refLo := 0.0
		if cell > 0 {
			refLo = g.refCDF[cell-1]
		}
		refShare := g.refCDF[cell] - refLo
		seen := 0
		for j < len(s.order) && int(s.cells[s.order[j]]) == cell {
			x := s.vals[s.order[j]]
			ties := 1
			for j+ties < len(s.order) && int(s.cells[s.order[j+ties]]) == cell && s.vals[s.order[j+ties]] == x {
				ties++
			}
			ref := refAt(refLo, refShare, lo, hi, x)
			left := float64(below+seen) / n // F_cur just below x
			seen += ties
			right := float64(below+seen) / n // F_cur at x
			d = max(d, math.Abs(ref-left), math.Abs(ref-right))
			j += ties
		}
	}
	return d
}

// ksExact is the KS statistic of column f of w against the reference's
// exact sorted values (a small reference keeps them): the sup of
// |F_ref - F_cur| over every value of either sample, as SciPy's ks_2samp
// computes it. A NaN of the window counts as above every value (the grid
// puts it in the overflow cell), so F_cur stays below 1 by the NaNs' share.
func (w *driftWindow) ksExact(f int) float64 {
	ref := w.cols[f].g.exact
	s := &w.ksr
	s.vals = s.vals[:0]
	for i := range w.n {
		if v := w.vals[i][f].v; v == v {
			s.vals = append(s.vals, v)
		}
	}
	slices.Sort(s.vals)
	cur := s.vals
	m, n := float64(len(ref)), float64(w.n)
	var d float64
	i, j := 0, 0
	for i < len(ref) || j < len(cur) {
		var x float64
		switch {
		case i == len(ref):
			x = cur[j]
		case j == len(cur):
			x = ref[i]
		default:
			x = min(ref[i], cur[j])
		}
		for i < len(ref) && ref[i] <= x {
			i++
		}
		for j < len(cur) && cur[j] <= x {
			j++
		}
		d = max(d, math.Abs(float64(i)/m-float64(j)/n))
	}
	return d
}
