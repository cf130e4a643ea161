package storefront

import (
	"math"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

// run simulates cfg for d of event time in steps of step and calls fn for
// every event.
func run(t testing.TB, cfg Config, d, step time.Duration, fn func(*schemas.Event)) *Simulator {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	end := s.Now().Add(d)
	for now := s.Now(); now.Before(end); {
		now = now.Add(step)
		if now.After(end) {
			now = end
		}
		s.Advance(now, fn)
	}
	return s
}

// row is one scored event: its features, in the order the feature stage
// computes them, and its label.
type row struct {
	x       []float64
	session string
	t       int64
	shifted bool // the session started under the shift
	label   float64
}

type sessState struct {
	start, last                   int64
	events, views, searches, adds int
	removes                       int
	cartValue, viewedPrice        float64
	shifted                       bool
	firstCheckout, purchase       int64
}

type userState struct {
	sessions, purchases int
	lastPurchase        int64
}

// featurizer computes, from the event stream alone, what the feature stage
// would compute, and the label "purchase within 30 min" of each scored event.
type featurizer struct {
	sim      *Simulator
	sessions map[string]*sessState
	users    map[string]*userState
	rows     []row
}

func newFeaturizer() *featurizer {
	return &featurizer{sessions: map[string]*sessState{}, users: map[string]*userState{}}
}

func (f *featurizer) event(e *schemas.Event) {
	ss := f.sessions[e.SessionID]
	u := f.users[e.UserID]
	if u == nil {
		u = &userState{lastPurchase: -1}
		f.users[e.UserID] = u
	}
	if ss == nil {
		ss = &sessState{start: e.TimeMillis, firstCheckout: -1, purchase: -1}
		ss.shifted = f.sim.Shifted(time.UnixMilli(e.TimeMillis))
		f.sessions[strings.Clone(e.SessionID)] = ss
		u.sessions++
	}
	ss.events++
	ss.last = e.TimeMillis
	switch e.Type {
	case schemas.ProductView:
		ss.views++
		ss.viewedPrice += e.Price
	case schemas.Search:
		ss.searches++
	case schemas.AddToCart:
		ss.adds++
		ss.cartValue += e.Price * float64(e.Quantity)
	case schemas.RemoveFromCart:
		ss.removes++
		ss.cartValue -= e.Price * float64(e.Quantity)
	case schemas.Purchase:
		ss.purchase = e.TimeMillis
		u.purchases++
		u.lastPurchase = e.TimeMillis
	}
	if !schemas.IsCartEvent(e.Type) {
		return
	}
	hours := 720.0
	if u.lastPurchase >= 0 {
		hours = min(hours, float64(e.TimeMillis-u.lastPurchase)/3.6e6)
	}
	mean := 0.0
	if ss.views > 0 {
		mean = ss.viewedPrice / float64(ss.views)
	}
	x := []float64{
		float64(ss.events), float64(ss.views), float64(ss.searches), float64(ss.adds),
		float64(ss.removes), ss.cartValue, mean, float64(e.TimeMillis-ss.start) / 1000,
		b2f(e.Type == schemas.CheckoutStart), float64(u.sessions), float64(u.purchases), hours,
		b2f(e.Device == "mobile"), b2f(e.Referrer == "ads" || e.Referrer == "email"),
	}
	f.rows = append(f.rows, row{x: x, session: strings.Clone(e.SessionID), t: e.TimeMillis, shifted: ss.shifted})
}

// labelled returns the rows whose 30 min horizon ended before the end of
// the simulation, with their labels.
func (f *featurizer) labelled() []row {
	const horizon = 30 * 60 * 1000
	end := f.sim.Now().UnixMilli()
	var out []row
	for _, r := range f.rows {
		if r.t+horizon >= end {
			continue
		}
		p := f.sessions[r.session].purchase
		r.label = b2f(p >= r.t && p <= r.t+horizon)
		out = append(out, r)
	}
	return out
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// logReg is a logistic regression on standardised features, fitted by
// Newton's method with a small ridge.
type logReg struct {
	mean, sd, w []float64 // w[0] is the intercept
}

func fitLogReg(rows []row) *logReg {
	d := len(rows[0].x)
	m := &logReg{mean: make([]float64, d), sd: make([]float64, d), w: make([]float64, d+1)}
	for _, r := range rows {
		for j, v := range r.x {
			m.mean[j] += v
		}
	}
	for j := range m.mean {
		m.mean[j] /= float64(len(rows))
	}
	for _, r := range rows {
		for j, v := range r.x {
			m.sd[j] += (v - m.mean[j]) * (v - m.mean[j])
		}
	}
	for j := range m.sd {
		m.sd[j] = math.Sqrt(m.sd[j] / float64(len(rows)))
		if m.sd[j] == 0 {
			m.sd[j] = 1
		}
	}
	n := d + 1
	z := make([]float64, n)
	for iter := 0; iter < 25; iter++ {
		g := make([]float64, n)
		h := make([][]float64, n)
		for i := range h {
			h[i] = make([]float64, n)
			h[i][i] = 1e-3
			g[i] = 1e-3 * m.w[i]
		}
		for _, r := range rows {
			m.z(r.x, z)
			p := sigmoid(dot(m.w, z))
			for i := range n {
				g[i] += (p - r.label) * z[i]
				for j := range n {
					h[i][j] += p * (1 - p) * z[i] * z[j]
				}
			}
		}
		step := solve(h, g)
		delta := 0.0
		for i := range m.w {
			m.w[i] -= step[i]
			delta = max(delta, math.Abs(step[i]))
		}
		if delta < 1e-6 {
			break
		}
	}
	return m
}

func (m *logReg) z(x, z []float64) {
	z[0] = 1
	for j, v := range x {
		z[j+1] = (v - m.mean[j]) / m.sd[j]
	}
}

func (m *logReg) score(x []float64) float64 {
	z := make([]float64, len(x)+1)
	m.z(x, z)
	return dot(m.w, z)
}

func dot(a, b []float64) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// solve solves a x = b by Gaussian elimination with partial pivoting.
func solve(a [][]float64, b []float64) []float64 {
	n := len(b)
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		a[c], a[p] = a[p], a[c]
		b[c], b[p] = b[p], b[c]
		for r := c + 1; r < n; r++ {
			f := a[r][c] / a[c][c]
			for k := c; k < n; k++ {
				a[r][k] -= f * a[c][k]
			}
			b[r] -= f * b[c]
		}
	}
	x := make([]float64, n)
	for r := n - 1; r >= 0; r-- {
		s := b[r]
		for k := r + 1; k < n; k++ {
			s -= a[r][k] * x[k]
		}
		x[r] = s / a[r][r]
	}
	return x
}

// auc is the ROC AUC of m on rows (ties count half).
func auc(m *logReg, rows []row) float64 {
	type sl struct{ s, y float64 }
	v := make([]sl, len(rows))
	for i, r := range rows {
		v[i] = sl{m.score(r.x), r.label}
	}
	sort.Slice(v, func(i, j int) bool { return v[i].s < v[j].s })
	var pos, neg, rankSum float64
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && v[j].s == v[i].s {
			j++
		}
		avg := float64(i+j+1) / 2 // mean 1-based rank of the tie group
		for k := i; k < j; k++ {
			if v[k].y == 1 {
				pos++
				rankSum += avg
			} else {
				neg++
			}
		}
		i = j
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// split returns the rows before and after event time t.
func split(rows []row, t int64) (before, after []row) {
	for _, r := range rows {
		if r.t < t {
			before = append(before, r)
		} else {
			after = append(after, r)
		}
	}
	return before, after
}
