package monitors

import (
	"fmt"
	"math"
)

// Detector is an online change detector fed one value of a model's error
// stream at a time: a loss, an absolute error, or 1 for a wrong prediction
// and 0 for a right one.
//
// Update returns true on the value at which a change is detected. As in
// River, the next Update starts the detector afresh, so one change is
// reported once. A NaN or infinite value is ignored (Update returns false
// and the state is left as it was): one such value would otherwise poison
// the running sums for good.
//
// The three implementations follow River's river.drift.ADWIN,
// river.drift.PageHinkley and river.drift.binary.DDM, defaults included, and
// report the same detection indices on the same stream. None allocates in
// Update, and each keeps constant memory.
type Detector interface {
	// Update feeds x and reports whether a change is detected at it.
	Update(x float64) (drift bool)
	// Warning reports whether the latest Update left the detector in its
	// warning zone. Only DDM has one; the others always return false.
	Warning() bool
	// Reset forgets everything seen, keeping the configuration.
	Reset()
}

var (
	_ Detector = (*ADWIN)(nil)
	_ Detector = (*PageHinkley)(nil)
	_ Detector = (*DDM)(nil)
)

// finiteInput reports whether x is neither NaN nor infinite: x-x is NaN
// exactly when x is.
func finiteInput(x float64) bool { return x-x == 0 }

// ---------------------------------------------------------------- ADWIN

// adwinMaxRows caps ADWIN's exponential histogram at this many rows (bucket
// sizes 1, 2, 4, ... 2^(adwinMaxRows-1)). With River's 5 buckets a row that
// is a window of about 5·2^48 ≈ 1.4e15 values, out of reach of any stream,
// while every row stays preallocated (about 4.6 KiB in all).
const adwinMaxRows = 48

// ADWINConfig configures an ADWIN detector. Zero fields take River's
// defaults (river.drift.ADWIN), so a zero ADWINConfig is River's ADWIN.
type ADWINConfig struct {
	// Delta is the significance of the cut test: the smaller, the fewer
	// false alarms and the later a real change is seen. In (0, 1); default
	// 0.002.
	Delta float64 `yaml:"delta"`
	// Clock is how many updates pass between two cut tests. 1 tests at
	// every value; higher is cheaper and delays detection by up to Clock-1
	// values. Default 32.
	Clock int `yaml:"clock"`
	// MaxBuckets is how many buckets of each size the exponential histogram
	// keeps before it merges the two oldest into one of twice the size. At
	// least 2; default 5.
	MaxBuckets int `yaml:"max_buckets"`
	// MinWindowLength is the fewest values either sub-window of a cut may
	// hold. Default 5.
	MinWindowLength int `yaml:"min_window_length"`
	// GracePeriod is how many values the window must exceed before the
	// first cut test. Default 10.
	GracePeriod int `yaml:"grace_period"`
}

func (c *ADWINConfig) setDefaults() {
	if c.Delta == 0 {
		c.Delta = 0.002
	}
	if c.Clock == 0 {
		c.Clock = 32
	}
	if c.MaxBuckets == 0 {
		c.MaxBuckets = 5
	}
	if c.MinWindowLength == 0 {
		c.MinWindowLength = 5
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = 10
	}
}

// Validate reports a config ADWIN cannot run with. It expects defaults to
// have been applied, as NewADWIN does.
func (c *ADWINConfig) Validate() error {
	switch {
	case !(c.Delta > 0 && c.Delta < 1):
		return fmt.Errorf("adwin: delta must be in (0, 1), got %g", c.Delta)
	case c.Clock < 1:
		return fmt.Errorf("adwin: clock must be >= 1, got %d", c.Clock)
	case c.MaxBuckets < 2 || c.MaxBuckets > 1<<10:
		// One bucket per size would leave empty rows inside the histogram,
		// which River's bucket removal does not expect.
		return fmt.Errorf("adwin: max_buckets must be in [2, 1024], got %d", c.MaxBuckets)
	case c.MinWindowLength < 1:
		return fmt.Errorf("adwin: min_window_length must be >= 1, got %d", c.MinWindowLength)
	case c.GracePeriod < 0:
		return fmt.Errorf("adwin: grace_period must be >= 0, got %d", c.GracePeriod)
	}
	return nil
}

// ADWIN is the adaptive windowing change detector of Bifet and Gavaldà,
// "Learning from Time-Changing Data with Adaptive Windowing", SIAM SDM 2007,
// in its ADWIN2 form: the window is an exponential histogram of buckets
// holding the total and the variance of 2^i values each, and every Clock
// values each boundary between buckets is tested as a cut into an older
// and a newer sub-window whose means differ by more than
//
//	ε = sqrt(2·m·σ²·δ') + 2/3·δ'·m,  m = 1/(n0-l+1) + 1/(n1-l+1),
//	δ' = ln(2·ln(W)/δ),
//
// with σ² the variance of the whole window of W values and l the minimum
// sub-window length. While a cut holds, the oldest bucket is dropped.
//
// It is a port of River's river.drift.ADWIN (river/drift/adwin_c.pyx) with
// its defaults delta 0.002, clock 32, max_buckets 5, min_window_length 5
// and grace_period 10, and like River it starts afresh on the update after
// a detection. Memory is constant: at most MaxBuckets+1 buckets in each of
// 48 preallocated rows. Should a stream ever fill the last row, its oldest
// bucket is dropped rather than merged.
type ADWIN struct {
	delta     float64
	clock     int
	maxB      int // buckets per row before a merge
	stride    int // maxB+1: a row has room for one bucket over before it merges
	minLen    float64
	grace     float64
	maxRows   int
	tot, vars []float64 // row r, bucket k (oldest first) at r*stride+k
	cnt       []int     // buckets in each row
	rows      int       // rows in use, always >= 1; row 0 holds single values

	width    float64 // values in the window
	total    float64 // their sum
	variance float64 // their sum of squared deviations from the mean
	tick     int
	drift    bool
}

// NewADWIN builds an ADWIN detector; a zero cfg gives River's defaults.
func NewADWIN(cfg ADWINConfig) (*ADWIN, error) {
	return newADWIN(cfg, adwinMaxRows)
}

func newADWIN(cfg ADWINConfig, maxRows int) (*ADWIN, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	stride := cfg.MaxBuckets + 1
	a := &ADWIN{
		delta:   cfg.Delta,
		clock:   cfg.Clock,
		maxB:    cfg.MaxBuckets,
		stride:  stride,
		minLen:  float64(cfg.MinWindowLength),
		grace:   float64(cfg.GracePeriod),
		maxRows: maxRows,
		tot:     make([]float64, maxRows*stride),
		vars:    make([]float64, maxRows*stride),
		cnt:     make([]int, maxRows),
	}
	a.Reset()
	return a, nil
}

// Reset empties the window.
func (a *ADWIN) Reset() {
	clear(a.cnt)
	a.rows = 1
	a.width, a.total, a.variance = 0, 0, 0
	a.tick = 0
	a.drift = false
}

// Warning is always false: ADWIN has no warning zone.
func (a *ADWIN) Warning() bool { return false }

// Width is the number of values in the current window: how long the
// stream has looked stationary.
func (a *ADWIN) Width() int { return int(a.width) }

// Estimation is the mean of the current window (River's estimation), 0
// when it is empty. For an error stream it is the current error rate.
func (a *ADWIN) Estimation() float64 {
	if a.width == 0 {
		return 0
	}
	return a.total / a.width
}

// Variance is the variance of the values in the current window, 0 when
// it is empty.
func (a *ADWIN) Variance() float64 {
	if a.width == 0 {
		return 0
	}
	return a.variance / a.width
}

// Update adds x to the window and, every Clock values, drops its older
// part while a cut between an older and a newer part is significant. It
// reports whether it dropped anything.
func (a *ADWIN) Update(x float64) bool {
	if !finiteInput(x) {
		return false
	}
	if a.drift {
		a.Reset()
	}
	a.insert(x)
	a.drift = a.detect()
	return a.drift
}

// The arithmetic below keeps River's order of operations so that the two
// agree to the last bit; explicit float64 conversions stop the compiler
// from fusing a multiply and an add where River rounds twice.

func (a *ADWIN) insert(x float64) {
	k := a.cnt[0]
	a.tot[k], a.vars[k] = x, 0
	a.cnt[0] = k + 1
	a.width++
	if a.width > 1 {
		d := x - a.total/(a.width-1)
		a.variance += (a.width - 1) * d * d / a.width
	}
	a.total += x
	a.compress()
}

// compress merges the two oldest buckets of every row that overflowed
// into one bucket of the next row, cascading up.
func (a *ADWIN) compress() {
	for r := 0; a.cnt[r] == a.maxB+1; r++ {
		if r+1 == a.maxRows {
			a.deleteOldest()
			return
		}
		if r+1 == a.rows {
			a.rows++
			a.cnt[r+1] = 0
		}
		base := r * a.stride
		n := float64(uint64(1) << r)
		t0, t1 := a.tot[base], a.tot[base+1]
		d := t0/n - t1/n
		merged := float64(n * 0.5 * d * d)
		next := (r+1)*a.stride + a.cnt[r+1]
		a.tot[next] = t0 + t1
		a.vars[next] = a.vars[base] + a.vars[base+1] + merged
		a.cnt[r+1]++
		a.shift(r, 2)
	}
}

// shift drops the n oldest buckets of row r.
func (a *ADWIN) shift(r, n int) {
	base, c := r*a.stride, a.cnt[r]-n
	copy(a.tot[base:base+c], a.tot[base+n:base+n+c])
	copy(a.vars[base:base+c], a.vars[base+n:base+n+c])
	a.cnt[r] = c
}

// deleteOldest drops the oldest bucket, which sits first in the last row.
func (a *ADWIN) deleteOldest() {
	r := a.rows - 1
	base := r * a.stride
	n := float64(uint64(1) << r)
	u, v := a.tot[base], a.vars[base]
	mu := u / n
	a.width -= n
	a.total -= u
	mw := a.total / a.width
	a.variance -= v + n*a.width*(mu-mw)*(mu-mw)/(n+a.width)
	a.shift(r, 1)
	if a.cnt[r] == 0 && a.rows > 1 {
		a.rows--
	}
}

func (a *ADWIN) detect() bool {
	a.tick++
	if a.tick%a.clock != 0 || a.width <= a.grace {
		return false
	}
	change := false
	for a.cut() {
		change = true
		a.deleteOldest()
	}
	return change
}

// cut reports whether some boundary between buckets splits the window
// into an older part W0 and a newer part W1 whose means differ by more
// than ε. Boundaries are walked from the oldest bucket on, as River does,
// so the first significant cut found is the one that keeps W1 longest.
func (a *ADWIN) cut() bool {
	var n0, u0 float64
	n1, u1 := a.width, a.total
	dPrime := math.Log(2 * math.Log(a.width) / a.delta)
	varW := a.variance / a.width
	for r := a.rows - 1; r >= 0; r-- {
		size := float64(uint64(1) << r)
		base := r * a.stride
		row := a.tot[base : base+a.cnt[r]]
		for k, t := range row {
			n0 += size
			n1 -= size
			u0 += t
			u1 -= t
			if r == 0 && k == len(row)-1 {
				return false // W1 is empty
			}
			if n1 < a.minLen || n0 < a.minLen {
				continue
			}
			m := 1/(n0-a.minLen+1) + 1/(n1-a.minLen+1)
			eps := math.Sqrt(2*m*varW*dPrime) + float64(2.0/3.0*dPrime*m)
			if math.Abs(u0/n0-u1/n1) > eps {
				return true
			}
		}
	}
	return false
}

// ---------------------------------------------------------- Page-Hinkley

// PageHinkleyMode is the direction of change a PageHinkley detector
// watches the stream's mean for.
type PageHinkleyMode string

// The modes of River's PageHinkley.
const (
	PageHinkleyUp   PageHinkleyMode = "up"   // increases only
	PageHinkleyDown PageHinkleyMode = "down" // decreases only
	PageHinkleyBoth PageHinkleyMode = "both" // either
)

// PageHinkleyConfig configures a PageHinkley detector. Zero fields take
// River's defaults (river.drift.PageHinkley), so a zero PageHinkleyConfig
// is River's PageHinkley; a Delta of exactly 0 cannot be asked for.
type PageHinkleyConfig struct {
	// MinInstances is how many values are seen before a change can be
	// detected. Default 30.
	MinInstances int `yaml:"min_instances"`
	// Delta is the magnitude of change tolerated: each value's deviation
	// from the running mean is reduced by it before it is accumulated.
	// Default 0.005.
	Delta float64 `yaml:"delta"`
	// Threshold (λ) is how far the cumulative deviation must move from its
	// extreme to signal a change. Default 50.
	Threshold float64 `yaml:"threshold"`
	// Alpha is the forgetting factor applied to the cumulative deviation
	// at each value, in (0, 1]. Default 1 - 0.0001.
	Alpha float64 `yaml:"alpha"`
	// Mode is "up", "down" or "both". Default "both".
	Mode PageHinkleyMode `yaml:"mode"`
}

func (c *PageHinkleyConfig) setDefaults() {
	if c.MinInstances == 0 {
		c.MinInstances = 30
	}
	if c.Delta == 0 {
		c.Delta = 0.005
	}
	if c.Threshold == 0 {
		c.Threshold = 50
	}
	if c.Alpha == 0 {
		c.Alpha = 1 - 0.0001
	}
	if c.Mode == "" {
		c.Mode = PageHinkleyBoth
	}
}

// Validate reports a config PageHinkley cannot run with. It expects
// defaults to have been applied, as NewPageHinkley does.
func (c *PageHinkleyConfig) Validate() error {
	switch {
	case c.MinInstances < 1:
		return fmt.Errorf("page-hinkley: min_instances must be >= 1, got %d", c.MinInstances)
	case !(c.Delta >= 0) || math.IsInf(c.Delta, 0):
		return fmt.Errorf("page-hinkley: delta must be finite and >= 0, got %g", c.Delta)
	case !(c.Threshold > 0) || math.IsInf(c.Threshold, 0):
		return fmt.Errorf("page-hinkley: threshold must be finite and > 0, got %g", c.Threshold)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return fmt.Errorf("page-hinkley: alpha must be in (0, 1], got %g", c.Alpha)
	}
	switch c.Mode {
	case PageHinkleyUp, PageHinkleyDown, PageHinkleyBoth:
		return nil
	}
	return fmt.Errorf("page-hinkley: mode must be up, down or both, got %q", c.Mode)
}

// PageHinkley is the Page-Hinkley test (E. S. Page, "Continuous Inspection
// Schemes", Biometrika 41, 1954), a CUSUM of each value's deviation from the
// running mean, faded by Alpha. Two-sided as in River: an increase is
// detected when the upward sum, less Delta per value, has risen more than
// Threshold above its minimum; a decrease when the downward sum, plus Delta
// per value, has fallen more than Threshold below its maximum.
//
// It is a port of River's river.drift.PageHinkley with its defaults
// min_instances 30, delta 0.005, threshold 50, alpha 1 - 0.0001 and mode
// "both"; it starts afresh on the update after a detection.
type PageHinkley struct {
	minN      float64
	delta     float64
	threshold float64
	alpha     float64
	up, down  bool

	n       float64
	mean    float64
	sumUp   float64 // faded Σ (x - mean - delta)
	sumDown float64 // faded Σ (x - mean + delta)
	minUp   float64
	maxDown float64
	drift   bool
}

// NewPageHinkley builds a Page-Hinkley detector; a zero cfg gives River's
// defaults.
func NewPageHinkley(cfg PageHinkleyConfig) (*PageHinkley, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &PageHinkley{
		minN:      float64(cfg.MinInstances),
		delta:     cfg.Delta,
		threshold: cfg.Threshold,
		alpha:     cfg.Alpha,
		up:        cfg.Mode != PageHinkleyDown,
		down:      cfg.Mode != PageHinkleyUp,
	}
	p.Reset()
	return p, nil
}

// Reset forgets the mean and both cumulative sums.
func (p *PageHinkley) Reset() {
	p.n, p.mean = 0, 0
	p.sumUp, p.sumDown = 0, 0
	p.minUp = math.Inf(1)
	// River starts the maximum at -1, which the first value's sum (delta,
	// as the first deviation is 0) always exceeds.
	p.maxDown = -1
	p.drift = false
}

// Warning is always false: Page-Hinkley has no warning zone.
func (p *PageHinkley) Warning() bool { return false }

// Mean is the running mean of the values since the last reset.
func (p *PageHinkley) Mean() float64 { return p.mean }

// Statistic is the test statistic compared with Threshold: how far the
// upward sum has risen above its minimum, or the downward sum fallen below
// its maximum, whichever is larger among the directions watched. It is 0
// before the first value.
func (p *PageHinkley) Statistic() float64 {
	if p.n == 0 {
		return 0
	}
	var s float64
	if p.up {
		s = p.sumUp - p.minUp
	}
	if p.down {
		s = max(s, p.maxDown-p.sumDown)
	}
	return s
}

// Update adds x and reports whether a change of the mean is detected.
func (p *PageHinkley) Update(x float64) bool {
	if !finiteInput(x) {
		return false
	}
	if p.drift {
		p.Reset()
	}
	p.n++
	p.mean += float64((1 / p.n) * (x - p.mean))
	dev := x - p.mean
	p.sumUp = float64(p.alpha*p.sumUp) + dev - p.delta
	p.sumDown = float64(p.alpha*p.sumDown) + dev + p.delta
	p.minUp = min(p.minUp, p.sumUp)
	p.maxDown = max(p.maxDown, p.sumDown)
	if p.n >= p.minN {
		p.drift = p.up && p.sumUp-p.minUp > p.threshold ||
			p.down && p.maxDown-p.sumDown > p.threshold
	}
	return p.drift
}

// ------------------------------------------------------------------ DDM

// DDMConfig configures a DDM detector. Zero fields take River's defaults
// (river.drift.binary.DDM), so a zero DDMConfig is River's DDM.
type DDMConfig struct {
	// WarmStart is how many values are seen before the minimum is tracked
	// and a warning or change can be signalled. Default 30.
	WarmStart int `yaml:"warm_start"`
	// WarningThreshold: the warning zone is entered when p + s exceeds
	// p_min + WarningThreshold·s_min. Default 2 (about 95% confidence).
	WarningThreshold float64 `yaml:"warning_threshold"`
	// DriftThreshold: a change is detected when p + s exceeds
	// p_min + DriftThreshold·s_min. Default 3 (about 99% confidence).
	DriftThreshold float64 `yaml:"drift_threshold"`
}

func (c *DDMConfig) setDefaults() {
	if c.WarmStart == 0 {
		c.WarmStart = 30
	}
	if c.WarningThreshold == 0 {
		c.WarningThreshold = 2
	}
	if c.DriftThreshold == 0 {
		c.DriftThreshold = 3
	}
}

// Validate reports a config DDM cannot run with. It expects defaults to
// have been applied, as NewDDM does.
func (c *DDMConfig) Validate() error {
	switch {
	case c.WarmStart < 1:
		return fmt.Errorf("ddm: warm_start must be >= 1, got %d", c.WarmStart)
	case !(c.WarningThreshold > 0) || math.IsInf(c.WarningThreshold, 0):
		return fmt.Errorf("ddm: warning_threshold must be finite and > 0, got %g", c.WarningThreshold)
	case !(c.DriftThreshold >= c.WarningThreshold) || math.IsInf(c.DriftThreshold, 0):
		return fmt.Errorf("ddm: drift_threshold must be finite and >= warning_threshold (%g), got %g",
			c.WarningThreshold, c.DriftThreshold)
	}
	return nil
}

// DDM is the Drift Detection Method of Gama, Medas, Castillo and
// Rodrigues, "Learning with Drift Detection", SBIA 2004, for a binary
// error stream: 1 for a wrong prediction, 0 for a right one (other values
// are averaged as given, as River does). It tracks the error rate p and its
// binomial standard deviation s = sqrt(p(1-p)/n), remembers p_min and s_min
// where p + s was lowest, and signals a warning when p + s exceeds
// p_min + 2·s_min and a change when it exceeds p_min + 3·s_min.
//
// It is a port of River's river.drift.binary.DDM with its defaults
// warm_start 30, warning_threshold 2 and drift_threshold 3; it starts
// afresh on the update after a detection. As in River, a stream with no
// error in its first WarmStart+1 values has p_min = s_min = 0, so its first
// error is detected as a change.
type DDM struct {
	warmStart float64
	warnT     float64
	driftT    float64

	n       float64
	p       float64
	pMin    float64
	sMin    float64
	psMin   float64
	warning bool
	drift   bool
}

// NewDDM builds a DDM detector; a zero cfg gives River's defaults.
func NewDDM(cfg DDMConfig) (*DDM, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &DDM{
		warmStart: float64(cfg.WarmStart),
		warnT:     cfg.WarningThreshold,
		driftT:    cfg.DriftThreshold,
	}
	d.Reset()
	return d, nil
}

// Reset forgets the error rate and its minimum.
func (d *DDM) Reset() {
	d.n, d.p = 0, 0
	d.pMin, d.sMin, d.psMin = math.NaN(), math.NaN(), math.Inf(1)
	d.warning, d.drift = false, false
}

// Warning reports whether the latest Update left the error rate in the
// warning zone without reaching a change.
func (d *DDM) Warning() bool { return d.warning }

// P is the error rate since the last reset.
func (d *DDM) P() float64 { return d.p }

// S is the standard deviation of P, sqrt(p(1-p)/n).
func (d *DDM) S() float64 {
	if d.n == 0 {
		return 0
	}
	return math.Sqrt(d.p * (1 - d.p) / d.n)
}

// PMin and SMin are p and s where p + s was lowest since the warm start;
// NaN until then.
func (d *DDM) PMin() float64 { return d.pMin }

// SMin is the s paired with PMin; NaN until the warm start is over.
func (d *DDM) SMin() float64 { return d.sMin }

// Update adds x (1 for an error, 0 for none) and reports whether the error
// rate has risen significantly above its best.
func (d *DDM) Update(x float64) bool {
	if !finiteInput(x) {
		return false
	}
	if d.drift {
		d.Reset()
	}
	d.n++
	d.p += float64((1 / d.n) * (x - d.p))
	s := math.Sqrt(d.p * (1 - d.p) / d.n)
	if d.n > d.warmStart {
		ps := d.p + s
		if ps <= d.psMin {
			d.pMin, d.sMin, d.psMin = d.p, s, ps
		}
		d.warning = ps > d.pMin+float64(d.warnT*d.sMin)
		if ps > d.pMin+float64(d.driftT*d.sMin) {
			d.drift, d.warning = true, false
		}
	}
	return d.drift
}
