package monitors

import (
	"fmt"
	"math"
	"time"

	"github.com/driftline/driftline/schemas"
)

// Detector names in Config.Detectors (and the statistic of their alerts).
const (
	DetectorADWIN       = "adwin"
	DetectorPageHinkley = "page_hinkley"
	DetectorDDM         = "ddm"
)

// errorDetector is one change detector on the champion's error stream.
type errorDetector struct {
	name   string
	d      Detector
	binary bool // fed the 0/1 error at the decision threshold, not |y - p|
	n      int  // errors fed since the detector last started afresh
	sum    float64
}

func (c *Config) newDetectors() ([]errorDetector, error) {
	var out []errorDetector
	for _, name := range c.Detectors {
		var d Detector
		var err error
		switch name {
		case DetectorADWIN:
			d, err = NewADWIN(c.ADWIN)
		case DetectorPageHinkley:
			d, err = NewPageHinkley(c.PageHinkley)
		case DetectorDDM:
			d, err = NewDDM(c.DDM)
		default:
			err = fmt.Errorf("unknown detector %q", name)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot build detector %s: %w", name, err)
		}
		out = append(out, errorDetector{name: name, d: d, binary: name == DetectorDDM})
	}
	return out, nil
}

// detect feeds one labelled prediction's error to every detector. A
// detection is a change point, not a state: it raises one error_change
// alert (no resolved one), at most one per detector per cooldown, and asks
// for a retrain through the same cooldown and budget as every incident.
// The alert's value is the mean error of the latest recentErrors labels
// (ADWIN: of its window after the cut), its threshold the mean error since
// the detector last started; a detection where the error fell (ADWIN cuts
// on falls too) raises nothing.
func (mo *Monitor) detect(score float64, label int, at time.Time) {
	e := math.Abs(float64(label) - score)
	wrong := 0.0
	if (score >= mo.cfg.DecisionThreshold) != (label != 0) {
		wrong = 1
	}
	for i := range mo.detectors {
		d := &mo.detectors[i]
		x := e
		if d.binary {
			x = wrong
		}
		d.n++
		d.sum += x
		if !d.d.Update(x) {
			continue
		}
		before, n := d.sum/float64(d.n), d.n
		d.n, d.sum = 0, 0
		after := mo.acc.recentError(recentErrors, d.binary, mo.cfg.DecisionThreshold)
		if a, ok := d.d.(*ADWIN); ok {
			after = a.Estimation()
		}
		if !(after > before) {
			continue
		}
		if _, ok := d.d.(*ADWIN); ok && after-before < mo.cfg.MinErrorIncrease {
			// ADWIN's after is the mean of its window past the cut, so
			// the rise is measured: too small to wake anyone for. (The
			// others' after is a trailing mean that lags the change.)
			continue
		}
		mo.fireOnce(check{
			kind: schemas.AlertErrorChange, stat: d.name, value: after, threshold: before,
			window: schemas.Window{From: mo.acc.oldest(), To: at}, samples: n,
			evidence: map[string]float64{"recent_labels": float64(min(recentErrors, mo.acc.n))},
		}, at)
	}
}

// recentErrors is how many of the latest labels an error_change alert's
// value averages over.
const recentErrors = 200

// recentError is the mean error of the latest k labels of the window:
// |label - score|, or the 0/1 error at threshold.
func (a *accuracyWindow) recentError(k int, binary bool, threshold float64) float64 {
	k = min(k, a.n)
	var sum float64
	for j := 1; j <= k; j++ {
		i := (a.next - j + len(a.scores)) % len(a.scores)
		p, y := a.scores[i], a.labels[i]
		if binary {
			if (p >= threshold) != (y != 0) {
				sum++
			}
		} else {
			sum += math.Abs(y - p)
		}
	}
	return sum / float64(k)
}

// fireOnce raises a one-shot incident: it fires, never resolves, and fires
// again for the same key only a cooldown later; an opening incident asks
// for a retrain.
func (mo *Monitor) fireOnce(c check, at time.Time) {
	key := dedupKey(mo.champ.Model, mo.champ.Version, c.kind, c.segment, c.feature, c.stat)
	in := mo.incidents[key]
	if in == nil {
		in = &incident{key: key}
		mo.incidents[key] = in
	}
	if in.observe(true, false, at, 1, 1, mo.cfg.Cooldown) != fire {
		return
	}
	in.id = key + "/" + at.UTC().Format(time.RFC3339)
	mo.alert(&c, in, schemas.AlertFiring, at)
	mo.requestRetrain(c.kind, []string{in.id}, at, at)
}
