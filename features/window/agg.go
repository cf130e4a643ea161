package window

import "math"

// A bucket is a run of float64 words: a header that places it in event
// time, then the aggregate, whose first word is the number of matching
// events (0: empty). Timestamps are Unix ms, exact in a float64.
//
//	lifetime:          [n, agg...]
//	tumbling, hopping: [start, n, agg...]   (one pane of width hop)
//	session:           [start, last, n, agg...]
//	event:             no state
//
// agg by aggregation: count: none; sum, mean: sum; min, max: value;
// last, first: time, value; time_since_*: time; distinct_count: the
// distinct count, then up to max_distinct hashes, most recent first.

// bucketWords is the size of a feature's aggregate, count word included.
func bucketWords(d *def) int {
	switch d.agg {
	case Count:
		return 1
	case Sum, Mean, Min, Max, TimeSinceLast, TimeSinceFirst:
		return 2
	case Last, First:
		return 3
	case DistinctCount:
		return 2 + d.distinct
	}
	panic("window: unknown aggregation")
}

// layout places one feature in a key's words.
type layout struct {
	d   *def
	idx int // position in the definitions (and in vectors)
	off int // first word in the key's words
	hdr int // header words of a bucket
	bw  int // words per bucket, header included
	nb  int // buckets
}

// newLayout sizes a feature's buckets. Rings hold every window that can be
// open: with watermark = max time - lateness, events fall in
// [wm, wm+lateness] and open windows end after wm.
func newLayout(d *def, idx, off int, lateness int64) layout {
	l := layout{d: d, idx: idx, off: off}
	switch d.kind {
	case Lifetime:
		l.nb = 1
		if d.pit > 0 {
			// older aggregate, ring length, then pit entries of (time[, value]).
			l.bw = bucketWords(d) + 1 + d.pit*pitEntryWords(d)
			return l
		}
	case Tumbling, Hopping:
		l.hdr = 1
		l.nb = int((d.size+lateness+d.hop-1)/d.hop) + 1
	case SessionGap:
		l.hdr = 2
		l.nb = int((lateness+d.gap-1)/d.gap) + 2
	case TriggerEvent:
		return l
	}
	l.bw = l.hdr + bucketWords(d)
	return l
}

// fold adds one event to an aggregate and returns how many distinct values
// it forgot (0 or 1).
func fold(d *def, b []float64, ts int64, v float64, h uint64) int {
	n := b[0]
	b[0] = n + 1
	t := float64(ts)
	switch d.agg {
	case Sum, Mean:
		b[1] += v
	case Min:
		if n == 0 || v < b[1] {
			b[1] = v
		}
	case Max:
		if n == 0 || v > b[1] {
			b[1] = v
		}
	case Last:
		if n == 0 || t >= b[1] {
			b[1], b[2] = t, v
		}
	case First:
		if n == 0 || t < b[1] {
			b[1], b[2] = t, v
		}
	case TimeSinceLast:
		if n == 0 || t > b[1] {
			b[1] = t
		}
	case TimeSinceFirst:
		if n == 0 || t < b[1] {
			b[1] = t
		}
	case DistinctCount:
		return addDistinct(b[1:], d.distinct, h)
	}
	return 0
}

// addDistinct adds a hash to [count, hashes...]: a remembered hash moves to
// the front; a new one counts and goes to the front, forgetting the least
// recent when max_distinct are remembered.
func addDistinct(b []float64, capacity int, h uint64) int {
	k := int(b[0])
	held := min(k, capacity)
	set := b[1 : 1+capacity]
	for i := range held {
		if math.Float64bits(set[i]) == h {
			copy(set[1:i+1], set[:i])
			set[0] = math.Float64frombits(h)
			return 0
		}
	}
	b[0] = float64(k + 1)
	forgot := 0
	if held == capacity {
		forgot = 1
		held--
	}
	copy(set[1:held+1], set[:held])
	set[0] = math.Float64frombits(h)
	return forgot
}

// merge folds aggregate src into dst (panes of a hopping window, sessions
// an event bridges) and returns how many distinct values it forgot.
func merge(d *def, dst, src []float64) int {
	if src[0] == 0 {
		return 0
	}
	if dst[0] == 0 {
		if d.agg == DistinctCount {
			clear(dst)
			forgot := 0
			k := min(int(src[1]), d.distinct)
			for i := k - 1; i >= 0; i-- {
				forgot += addDistinct(dst[1:], d.distinct, math.Float64bits(src[2+i]))
			}
			dst[0] = src[0]
			return forgot
		}
		copy(dst, src)
		return 0
	}
	n := dst[0]
	dst[0] = n + src[0]
	switch d.agg {
	case Sum, Mean:
		dst[1] += src[1]
	case Min:
		dst[1] = math.Min(dst[1], src[1])
	case Max:
		dst[1] = math.Max(dst[1], src[1])
	case Last:
		if src[1] >= dst[1] {
			dst[1], dst[2] = src[1], src[2]
		}
	case First:
		if src[1] < dst[1] {
			dst[1], dst[2] = src[1], src[2]
		}
	case TimeSinceLast:
		dst[1] = math.Max(dst[1], src[1])
	case TimeSinceFirst:
		dst[1] = math.Min(dst[1], src[1])
	case DistinctCount:
		forgot := 0
		k := min(int(src[1]), d.distinct)
		for i := k - 1; i >= 0; i-- {
			forgot += addDistinct(dst[1:], d.distinct, math.Float64bits(src[2+i]))
		}
		return forgot
	}
	return 0
}

// final is the feature's value of an aggregate read at event time t.
func final(d *def, b []float64, t int64) float64 {
	n := b[0]
	if n == 0 {
		return d.deflt
	}
	var v float64
	switch d.agg {
	case Count:
		v = n
	case Sum, Min, Max, DistinctCount:
		v = b[1]
	case Mean:
		v = b[1] / n
	case Last, First:
		v = b[2]
	case TimeSinceLast, TimeSinceFirst:
		v = float64(t-int64(b[1])) / d.unit
	}
	return math.Min(v, d.maxValue)
}

// pitEntryWords is the size of a point-in-time ring entry: the time, and the
// value where the aggregation reads one.
func pitEntryWords(d *def) int {
	switch d.agg {
	case Count, TimeSinceLast, TimeSinceFirst:
		return 1
	}
	return 2
}

// foldPIT adds an event to a point-in-time bucket: it enters the ring of
// the latest contributions; when the ring is full, the earliest of the ring
// and the event is folded into the older aggregate.
func foldPIT(d *def, b []float64, ts int64, v float64) {
	aw, ew := bucketWords(d), pitEntryWords(d)
	older, ring := b[:aw], b[aw:]
	n := min(int(ring[0]), d.pit) // min: a restored record is data
	entries := ring[1:]
	if n < d.pit {
		entries[n*ew] = float64(ts)
		if ew == 2 {
			entries[n*ew+1] = v
		}
		ring[0] = float64(n + 1)
		return
	}
	lo := -1
	for i := range n {
		if int64(entries[i*ew]) < ts && (lo < 0 || entries[i*ew] < entries[lo*ew]) {
			lo = i
		}
	}
	if lo < 0 {
		fold(d, older, ts, v, 0) // the event itself is the earliest
		return
	}
	ots, ov := int64(entries[lo*ew]), 1.0
	if ew == 2 {
		ov = entries[lo*ew+1]
		entries[lo*ew+1] = v
	}
	entries[lo*ew] = float64(ts)
	fold(d, older, ots, ov, 0)
}

// readPIT is a point-in-time feature at time t: the older aggregate plus
// the ring's contributions at or before t, folded into acc.
func readPIT(d *def, b, acc []float64, t int64) float64 {
	aw, ew := bucketWords(d), pitEntryWords(d)
	copy(acc, b[:aw])
	ring := b[aw:]
	entries := ring[1:]
	for i := range min(int(ring[0]), d.pit) {
		if ts := int64(entries[i*ew]); ts <= t {
			v := 1.0
			if ew == 2 {
				v = entries[i*ew+1]
			}
			fold(d, acc, ts, v, 0)
		}
	}
	return final(d, acc, t)
}
