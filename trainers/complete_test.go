package trainers

import (
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

// Shadow and probation judge only labels whose outcome window has closed:
// up to the oldest partition's newest horizon label. Labels after it are
// mostly quick positives and would bias the comparison.
func TestJudgesUseOnlyCompleteLabels(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	c := completeness{}
	if !c.upTo().IsZero() {
		t.Fatal("no horizon label yet: nothing is complete")
	}
	c.observe(0, &schemas.Label{Reason: schemas.LabelReasonHorizon, EventTime: at(10)})
	c.observe(1, &schemas.Label{Reason: schemas.LabelReasonHorizon, EventTime: at(4)})
	c.observe(1, &schemas.Label{Reason: schemas.LabelReasonPurchase, EventTime: at(30)}) // positives say nothing
	if got := c.upTo(); !got.Equal(at(4)) {
		t.Fatalf("complete up to %v, want %v (the oldest partition's newest horizon label)", got, at(4))
	}
	var j judge
	j.add(0.9, 0.1, 1, at(1))
	j.add(0.2, 0.8, 0, at(4))
	j.add(0.7, 0.3, 1, at(5)) // not complete yet
	a, b, y := j.complete(c.upTo())
	if len(y) != 2 || a[0] != 0.9 || b[1] != 0.8 || y[1] != 0 {
		t.Fatalf("complete pairs = %v %v %v, want the first two", a, b, y)
	}
}
