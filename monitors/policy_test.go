package monitors

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/schematest"
	"github.com/driftline/driftline/schemas"
)

func TestIncidentObserve(t *testing.T) {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	var in incident
	// consecutive 3, clear 2, cooldown 60 min; one evaluation a minute.
	steps := []struct {
		breached bool
		want     transition
	}{
		{true, stay}, {true, stay}, {true, fire}, // fires on the third breach
		{true, stay}, {false, stay}, {true, stay}, // one clear evaluation is not enough to resolve
		{false, stay}, {false, resolve}, // two are
		{false, stay}, {true, stay}, {true, stay}, {true, fire}, // a new breach needs 3 again
	}
	for i, s := range steps {
		if got := in.observe(s.breached, !s.breached, at(i), 3, 2, time.Hour); got != s.want {
			t.Fatalf("step %d (breached %v): got %v, want %v", i, s.breached, got, s.want)
		}
	}
	// Still breached an hour after firing: a new incident, starting now.
	for m := 12; m < 71; m++ {
		if got := in.observe(true, false, at(m), 3, 2, time.Hour); got != stay {
			t.Fatalf("minute %d: %v inside the cooldown", m, got)
		}
	}
	if got := in.observe(true, false, at(71), 3, 2, time.Hour); got != fire || !in.since.Equal(at(71)) {
		t.Fatalf("after the cooldown: %v since %s, want a new incident since %s", got, in.since, at(71))
	}
}

func TestBonferroniAdjustsOnlyPValues(t *testing.T) {
	checks := []check{
		{stat: "ks", value: 0.01, threshold: 0.05, below: true, pvalue: true},
		{stat: "ks", value: 0.02, threshold: 0.05, below: true, pvalue: true},
		{stat: "chisquare", value: 0.001, threshold: 0.05, below: true, pvalue: true},
		{stat: "psi", value: 0.3, threshold: 0.2},
		{stat: "roc_auc", value: 0.6, threshold: 0.7, below: true},
	}
	bonferroni(checks, 1)
	for i, want := range []float64{0.05 / 3, 0.05 / 3, 0.05 / 3, 0.2, 0.7} {
		if checks[i].threshold != want {
			t.Errorf("check %d (%s): threshold %g, want %g", i, checks[i].stat, checks[i].threshold, want)
		}
	}
	// 0.01 and 0.02 would breach 0.05 alone; among three tests only the
	// smallest p-value does.
	for i, want := range []bool{true, false, true, true, true} {
		if checks[i].breached() != want {
			t.Errorf("check %d (%s = %g vs %g): breached %v, want %v", i, checks[i].stat, checks[i].value, checks[i].threshold, !want, want)
		}
	}
	if ev := checks[0].allEvidence(); ev["tests"] != 3 || ev["alpha"] != 0.05 {
		t.Errorf("evidence = %v, want tests 3 and alpha 0.05", ev)
	}
}

func TestRetrainBudget(t *testing.T) {
	b := retrainBudget{perHour: 2}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, s := range []struct {
		minute int
		want   bool
	}{{0, true}, {10, true}, {20, false}, {59, false}, {60, true}, {65, false}, {70, true}} {
		got := b.allow(at(s.minute))
		if got != s.want {
			t.Errorf("minute %d: allow = %v, want %v", s.minute, got, s.want)
		}
		if got {
			b.record(at(s.minute))
		}
	}
	if (&retrainBudget{perHour: -1}).allow(t0) != true {
		t.Error("a negative budget must not cap")
	}
}

// A shift that ends resolves its incident; a second incident inside the
// hour gets its alert but no retrain request over a budget of one.
func TestShiftResolvesAndBudgetCapsRetrains(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	w := newWatched(t, Config{Cooldown: 15 * time.Minute, RetrainsPerHour: 1}, reference(rng, 20000))
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 200 * time.Millisecond) }
	i := 0
	feed := func(n int, price, mobile float64) {
		for range n {
			w.vector(t, at(i), sample(rng, price, mobile))
			i++
		}
	}
	feed(3000, 40, 0.5)
	feed(3000, 80, 0.5) // price shifts
	feed(4000, 40, 0.5) // and comes back
	alerts := drainAlerts(w.alerts)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts, want firing then resolved for price: %+v", len(alerts), alerts)
	}
	f, r := alerts[0], alerts[1]
	if f.Status != schemas.AlertFiring || f.Feature != "price" || f.Comparison != ">" || f.Severity == "" ||
		f.DedupKey != "purchase_propensity/v1/drift/price/wasserstein" || f.Incident != f.ID {
		t.Errorf("firing alert = %+v", f)
	}
	if r.Status != schemas.AlertResolved || r.DedupKey != f.DedupKey || r.Incident != f.ID || r.ID == f.ID ||
		r.Severity != schemas.SeverityInfo || r.Value > r.Threshold || !r.EventTime.After(f.EventTime) {
		t.Errorf("resolved alert = %+v (firing %+v)", r, f)
	}
	if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 1 {
		t.Fatalf("%d retrain requests after the first incident, want 1", n)
	}

	feed(3000, 40, 0.95) // the mobile share moves, within the same hour
	alerts = drainAlerts(w.alerts)
	if len(alerts) != 1 || alerts[0].Feature != "mobile" || alerts[0].Status != schemas.AlertFiring {
		t.Fatalf("want one firing alert for mobile, got %+v", alerts)
	}
	if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 0 {
		t.Errorf("%d retrain requests over a budget of 1 per hour", n)
	}
	if got := testutil.ToFloat64(w.mo.m.suppressedBudget); got != 1 {
		t.Errorf("suppressed{reason=budget} = %g, want 1", got)
	}
}

// Every alert the monitor publishes, firing and resolved, is valid against
// the schema documented for subscribers.
func TestAlertsMatchTheirJSONSchema(t *testing.T) {
	sch := schematest.Compile(t, schemas.TopicAlerts)
	rng := rand.New(rand.NewPCG(13, 14))
	w := newWatched(t, Config{}, reference(rng, 20000))
	for i := range 12000 {
		price := 40.0
		if i >= 3000 && i < 7000 {
			price = 80
		}
		w.vector(t, t0.Add(time.Duration(i)*time.Second), sample(rng, price, 0.5))
	}
	var n int
	statuses := map[string]bool{}
	for {
		select {
		case m := <-w.alerts:
			m.Ack()
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(m.Payload))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("alert %s does not match the schema: %v", m.Payload, err)
			}
			var a schemas.Alert
			_ = json.Unmarshal(m.Payload, &a)
			statuses[a.Status] = true
			n++
			continue
		case <-time.After(50 * time.Millisecond):
		}
		break
	}
	if !statuses[schemas.AlertFiring] || !statuses[schemas.AlertResolved] {
		t.Errorf("%d alerts with statuses %v, want firing and resolved ones", n, statuses)
	}
}

// A retrain request the hourly budget held back goes out once the budget
// frees, while its incident is still open, exactly once, with the
// idempotency key of its breach; one whose incident resolves first is
// dropped. Event time is the clock: vectors 200 ms apart.
func TestBudgetHeldRetrainIsSentWhenTheBudgetFrees(t *testing.T) {
	for _, resolves := range []bool{false, true} {
		name := "incident still open"
		if resolves {
			name = "incident resolved first"
		}
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(11, 12))
			w := newWatched(t, Config{Cooldown: 40 * time.Minute, RetrainsPerHour: 1}, reference(rng, 20000))
			at := func(i int) time.Time { return t0.Add(time.Duration(i) * 200 * time.Millisecond) }
			i := 0
			feedUntil := func(end time.Time, price, mobile float64) {
				for ; at(i).Before(end); i++ {
					w.vector(t, at(i), sample(rng, price, mobile))
				}
			}
			feedUntil(at(3000), 40, 0.5)
			feedUntil(at(6000), 80, 0.5)  // price shifts: fires, asks for a retrain
			feedUntil(at(16000), 40, 0.5) // and resolves
			alerts := drainAlerts(w.alerts)
			first := drain[schemas.RetrainRequest](w.retrain)
			if len(alerts) != 2 || len(first) != 1 {
				t.Fatalf("price incident: %d alerts, %d retrain requests; want firing + resolved and 1", len(alerts), len(first))
			}
			spent := alerts[0].EventTime // the budget's one request of the hour
			mobileFrom := at(i)

			// The mobile share moves 53 min in: past the cooldown (40 min),
			// inside the hour of the first request: held by the budget.
			if resolves {
				feedUntil(at(i+2000), 40, 0.95)
				feedUntil(spent.Add(time.Hour-time.Minute), 40, 0.5)
			} else {
				feedUntil(spent.Add(time.Hour-time.Minute), 40, 0.95)
			}
			alerts = drainAlerts(w.alerts)
			if len(alerts) == 0 || alerts[0].Feature != "mobile" || alerts[0].Status != schemas.AlertFiring {
				t.Fatalf("want a firing alert for mobile, got %+v", alerts)
			}
			mobile := alerts[0]
			if resolves && (len(alerts) != 2 || alerts[1].Status != schemas.AlertResolved) {
				t.Fatalf("want mobile's incident resolved, got %+v", alerts)
			}
			if n := len(drain[schemas.RetrainRequest](w.retrain)); n != 0 {
				t.Fatalf("%d retrain requests while the hour's budget was spent", n)
			}
			if got := testutil.ToFloat64(w.mo.m.suppressedBudget); got != 1 {
				t.Errorf("suppressed{reason=budget} = %g, want 1", got)
			}

			// The budget frees an hour after the first request; the breach
			// (if it goes on) stays under a cooldown since mobile fired.
			price, share := 40.0, 0.95
			if resolves {
				share = 0.5
			}
			feedUntil(mobile.EventTime.Add(35*time.Minute), price, share)
			reqs := drain[schemas.RetrainRequest](w.retrain)
			if resolves {
				if len(reqs) != 0 {
					t.Errorf("retrain requested for a resolved incident: %+v", reqs)
				}
				if got := testutil.ToFloat64(w.mo.m.suppressedResolved); got != 1 {
					t.Errorf("suppressed{reason=resolved} = %g, want 1", got)
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("%d retrain requests once the budget freed, want exactly 1: %+v", len(reqs), reqs)
			}
			r := reqs[0]
			if len(r.Alerts) != 1 || r.Alerts[0] != mobile.Incident || r.Reason != schemas.AlertDrift || r.FromVersion != 1 ||
				r.DataFrom.Before(mobileFrom) || r.DataFrom.After(mobile.EventTime) ||
				r.IdempotencyKey != "purchase_propensity/v1/"+r.DataFrom.UTC().Format(time.RFC3339) || r.IdempotencyKey == first[0].IdempotencyKey {
				t.Errorf("held retrain request = %+v (mobile alert %+v, first request %+v)", r, mobile, first[0])
			}
			if got := testutil.ToFloat64(w.mo.m.retrains); got != 2 {
				t.Errorf("retrain_requests_total = %g, want 2", got)
			}
			if len(drainAlerts(w.alerts)) != 0 {
				t.Error("mobile alerted again within its cooldown")
			}
		})
	}
}
