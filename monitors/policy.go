package monitors

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/driftline/driftline/schemas"
)

// check is one statistic of one evaluation set against its threshold: the
// unit the alert policy debounces. Its dedup key names what is watched, so
// the same feature, segment and statistic of the same champion is one
// incident however many evaluations breach.
type check struct {
	kind      string
	feature   string
	segment   string
	stat      string
	value     float64
	threshold float64
	// below: the value breaches when it is under the threshold (p-values,
	// AUC); otherwise when it is over it (distances).
	below bool
	// pvalue: the value is a test's p-value, whose threshold multiple
	// testing control adjusts.
	pvalue bool
	// band is the distance the hysteresis band is a fraction of for a
	// "below" check that is not a p-value (the allowed AUC drop).
	band     float64
	window   schemas.Window
	samples  int
	evidence map[string]float64
	key      string // dedup key, when the caller has it cached

	// Evidence kept as numbers until an alert needs it, so that an
	// evaluation allocates nothing: a drift check's PSI, test statistic
	// and reference rows; the multiple-testing correction of a p-value.
	drift    bool
	psi      float64
	testStat float64
	refRows  int
	alpha    float64
	tests    int
}

// allEvidence is the alert's evidence map.
func (c *check) allEvidence() map[string]float64 {
	ev := map[string]float64{}
	for k, v := range c.evidence {
		ev[k] = v
	}
	if c.drift {
		ev["psi"] = round(c.psi)
		ev["reference_rows"] = float64(c.refRows)
		if !math.IsNaN(c.testStat) {
			ev["statistic"] = round(c.testStat)
		}
	}
	if c.tests > 1 {
		ev["alpha"] = c.alpha
		ev["tests"] = float64(c.tests)
	}
	if len(ev) == 0 {
		return nil
	}
	return ev
}

func (c *check) breached() bool {
	if math.IsNaN(c.value) {
		return false
	}
	if c.below {
		return c.value < c.threshold
	}
	return c.value > c.threshold
}

// cleared reports whether the value is clear of the threshold by the
// hysteresis band f (see Config.ResolveFraction); a NaN value (too few
// labels of one class, say) is neither breached nor clear.
func (c *check) cleared(f float64) bool {
	switch {
	case math.IsNaN(c.value):
		return false
	case c.pvalue:
		return c.value >= c.threshold/f
	case c.below:
		return c.value >= c.threshold+(1-f)*c.band
	default:
		return c.value < c.threshold*f
	}
}

// severity is critical when the value is far past its threshold: twice a
// distance threshold, a hundredth of a p-value threshold, or (for AUC
// floors, where criticalGap says how far) twice the allowed drop.
func (c *check) severity(criticalGap float64) string {
	switch {
	case c.pvalue:
		if c.value < c.threshold/100 {
			return schemas.SeverityCritical
		}
	case c.below:
		if criticalGap > 0 && c.value < c.threshold-criticalGap {
			return schemas.SeverityCritical
		}
	default:
		if c.value > 2*c.threshold {
			return schemas.SeverityCritical
		}
	}
	return schemas.SeverityWarning
}

// incident tracks one dedup key: how long its breach has held, whether it
// is firing, and since when.
type incident struct {
	streak  int       // consecutive breached evaluations
	calm    int       // consecutive clear evaluations while firing
	since   time.Time // event time the current breach began
	firedAt time.Time // event time it last fired
	firing  bool
	silent  bool   // firing, but covered by all traffic's incident: not published
	id      string // ID of the alert that opened the incident
	key     string
}

// transition is what one evaluation did to an incident.
type transition int

const (
	stay    transition = iota
	fire               // a new incident opens (first fire, or a reminder after the cooldown)
	resolve            // a firing incident cleared
)

// observe folds one evaluation in. A breach fires once it has held for
// consecutive evaluations, then stays quiet while it holds; if it still
// holds a cooldown after firing (the retrain did not cure it, or the gate
// kept the champion) it fires again as a new incident that starts now. A
// firing incident resolves after clear consecutive evaluations that are
// clear (past the hysteresis band, not merely unbreached).
func (in *incident) observe(breached, clear bool, at time.Time, consecutive, clearN int, cooldown time.Duration) transition {
	if !breached {
		in.streak = 0
		if !in.firing {
			return stay
		}
		if !clear {
			in.calm = 0
			return stay
		}
		in.calm++
		if in.calm < clearN {
			return stay
		}
		in.firing, in.calm = false, 0
		return resolve
	}
	in.calm = 0
	in.streak++
	if in.streak == 1 && !in.firing {
		in.since = at
	}
	if in.streak < consecutive {
		return stay
	}
	if in.firing {
		if at.Sub(in.firedAt) < cooldown {
			return stay
		}
		in.since = at
	}
	in.firing, in.firedAt = true, at
	return fire
}

// bonferroni sets the threshold of every p-value check among checks to
// alpha/m, m being how many p-value checks there are times families (the
// segments judged beside all traffic, each testing the same features): the
// family-wise error rate of one evaluation of many features x segments
// stays at alpha.
// Distance checks keep their thresholds (a distance does not grow more
// likely to cross a fixed bar because more features are measured).
func bonferroni(checks []check, families int) {
	m := 0
	for i := range checks {
		if checks[i].pvalue {
			m++
		}
	}
	m *= max(families, 1)
	if m <= 1 {
		return
	}
	for i := range checks {
		c := &checks[i]
		if c.pvalue {
			c.alpha, c.tests = c.threshold, m
			c.threshold /= float64(m)
		}
	}
}

// retrainBudget caps retrain requests per rolling hour of event time.
type retrainBudget struct {
	perHour int
	sent    []time.Time // event times of the requests of the last hour
}

// allow reports whether a request at may be sent; record counts one that
// was.
func (b *retrainBudget) allow(at time.Time) bool {
	if b.perHour <= 0 {
		return true
	}
	kept := b.sent[:0]
	for _, t := range b.sent {
		if at.Sub(t) < time.Hour {
			kept = append(kept, t)
		}
	}
	b.sent = kept
	return len(b.sent) < b.perHour
}

func (b *retrainBudget) record(at time.Time) {
	if b.perHour > 0 {
		b.sent = append(b.sent, at)
	}
}

func dedupKey(model string, version int, kind, segment, feature, stat string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/v%d/%s/", model, version, kind)
	if segment != "" {
		b.WriteString(segment)
		b.WriteByte('/')
	}
	if feature != "" {
		b.WriteString(feature)
		b.WriteByte('/')
	}
	b.WriteString(stat)
	return b.String()
}
