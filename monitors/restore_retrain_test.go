package monitors

import (
	"flag"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/internal/checkfor"
	"github.com/driftline/driftline/schemas"
)

// retrainRestore switches the retrain policy's restore off for the
// restarted monitor (go test ./monitors -run RetrainPolicy -args
// -retrain-restore=false): the cases below then fail, which shows what
// the restore does.
var retrainRestore = flag.Bool("retrain-restore", true, "restore the retrain cooldown, budget and held request at a restart")

// A restarted monitor keeps the retrain policy of the one before it: the
// cooldown since the last request, the hourly budget spent, and a request
// the budget held. Monitor A fires on a price shift and asks for a retrain
// (decided at D); then, per case, it goes on for a while and stops, and
// monitor B starts on the same topics and group.
func TestRetrainPolicySurvivesARestart(t *testing.T) {
	type seen struct {
		d                    time.Time // A's first request's decided_at
		aAlerts, bAlerts     []schemas.Alert
		aRequests, bRequests []schemas.RetrainRequest
	}
	cases := []struct {
		name     string
		cooldown time.Duration
		perHour  int
		aFor     time.Duration // A runs until D + aFor
		price    float64       // B's vectors
		mobile   float64
		bFor     time.Duration // B runs until D + bFor
		check    func(t *testing.T, s seen)
	}{{
		// B opens a new incident (mobile share) within the 2 h cooldown
		// of A's request: no retrain.
		name: "cooldown", cooldown: 2 * time.Hour, perHour: 3, aFor: 0, price: 80, mobile: 0.9, bFor: 50 * time.Minute,
		check: func(t *testing.T, s seen) {
			if !slices.ContainsFunc(s.bAlerts, func(a schemas.Alert) bool { return a.Feature == "mobile" && a.Status == schemas.AlertFiring }) {
				t.Fatalf("monitor B opened no mobile incident: %+v", s.bAlerts)
			}
			if len(s.bRequests) != 0 {
				t.Errorf("monitor B asked for %d retrains within the cooldown of A's request at %s: %+v", len(s.bRequests), s.d, s.bRequests)
			}
		},
	}, {
		// Budget 1 per hour, cooldown 30 min: the price incident fires
		// again in B at D+30min, within the hour A's request spent.
		name: "budget", cooldown: 30 * time.Minute, perHour: 1, aFor: 0, price: 80, mobile: 0.5, bFor: 75 * time.Minute,
		check: func(t *testing.T, s seen) {
			for _, q := range s.bRequests {
				if q.DecidedAt.Sub(s.d) < time.Hour {
					t.Errorf("monitor B asked for a retrain decided at D+%s, within the hour whose budget A spent", q.DecidedAt.Sub(s.d))
				}
			}
			if len(s.bRequests) != 1 {
				t.Errorf("monitor B asked for %d retrains, want 1 once the budget freed: %+v", len(s.bRequests), s.bRequests)
			}
		},
	}, {
		// Budget 1 per hour, cooldown 40 min: A's price incident fires
		// again at D+40min and the budget holds its request; A stops.
		// B sends it once the budget frees, naming that incident.
		name: "held request is sent", cooldown: 40 * time.Minute, perHour: 1, aFor: 50 * time.Minute, price: 80, mobile: 0.5, bFor: 70 * time.Minute,
		check: func(t *testing.T, s seen) {
			heldID := heldIncident(t, s.aAlerts, s.aRequests)
			if len(s.bRequests) != 1 {
				t.Fatalf("monitor B asked for %d retrains, want the held one once: %+v", len(s.bRequests), s.bRequests)
			}
			q := s.bRequests[0]
			if !slices.Contains(q.Alerts, heldID) || q.DecidedAt.Sub(s.d) < time.Hour {
				t.Errorf("monitor B's request %+v: want it to name held incident %s, decided once the budget freed (D+1h)", q, heldID)
			}
		},
	}, {
		// As above, but the shift ends before the budget frees: the held
		// request is never sent.
		name: "held request resolves first", cooldown: 20 * time.Minute, perHour: 1, aFor: 25 * time.Minute, price: 40, mobile: 0.5, bFor: 70 * time.Minute,
		check: func(t *testing.T, s seen) {
			heldID := heldIncident(t, s.aAlerts, s.aRequests)
			var resolvedAt time.Time
			for _, a := range s.bAlerts {
				if a.Status == schemas.AlertResolved && a.Incident == heldID {
					resolvedAt = a.EventTime
				}
			}
			if resolvedAt.IsZero() || resolvedAt.Sub(s.d) >= time.Hour {
				t.Fatalf("held incident %s did not resolve before the budget freed: %+v", heldID, s.bAlerts)
			}
			if len(s.bRequests) != 0 {
				t.Errorf("monitor B sent %d retrains for a held request whose incident resolved: %+v", len(s.bRequests), s.bRequests)
			}
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRestartRig(t)
			cfg := Config{Segments: []string{}, Window: 1000, EvaluateEvery: 100, Cooldown: c.cooldown, RetrainsPerHour: c.perHour}
			_, stopA := r.monitorWith(cfg, true)
			r.vectors(5000, 40)
			r.vectors(1500, 80) // prices double: A fires and asks
			r.untilEvaluated(r.sent - 1)
			var s seen
			checkfor.Until(t, 30*time.Second, "monitor A's retrain request", func() bool {
				s.aRequests = append(s.aRequests, poll[schemas.RetrainRequest](t, r.ctx, r.retrain)...)
				return len(s.aRequests) > 0
			})
			s.d = s.aRequests[0].DecidedAt
			if s.d.IsZero() {
				t.Fatalf("monitor A's request has no decided_at: %+v", s.aRequests[0])
			}
			// Vectors to produce to reach D + d, a whole number of
			// evaluations (the last vector closes one).
			until := func(d time.Duration) int {
				n := int(s.d.Add(d).Sub(t0)/time.Second) - r.sent
				return max(0, (n+cfg.EvaluateEvery-1)/cfg.EvaluateEvery*cfg.EvaluateEvery)
			}
			if n := until(c.aFor); n > 0 {
				r.vectors(n, 80)
				r.untilEvaluated(r.sent - 1)
			}
			stopA()
			firings := 1 // the first
			if c.aFor >= c.cooldown {
				firings = 2 // and the one a cooldown later
			}
			checkfor.Until(t, 30*time.Second, "monitor A's firing alerts", func() bool {
				s.aAlerts = append(s.aAlerts, poll[schemas.Alert](t, r.ctx, r.alerts)...)
				return len(s.aAlerts) >= firings
			})
			s.aRequests = append(s.aRequests, pollAll[schemas.RetrainRequest](t, r, r.retrain)...)
			if len(s.aRequests) != 1 {
				t.Fatalf("monitor A asked for %d retrains, want 1: %+v", len(s.aRequests), s.aRequests)
			}

			r.monitorWith(cfg, *retrainRestore)
			r.vectorsOf(until(c.bFor), c.price, c.mobile)
			r.untilEvaluated(r.sent - 1)
			s.bAlerts = pollAll[schemas.Alert](t, r, r.alerts)
			s.bRequests = pollAll[schemas.RetrainRequest](t, r, r.retrain)
			c.check(t, s)
		})
	}
}

// pollAll polls cl until a poll brings nothing new. The monitor publishes
// an evaluation's alerts and requests before its reports, so once
// untilEvaluated returned they are all on their topics.
func pollAll[T any](t *testing.T, r *restartRig, cl *kgo.Client) []T {
	var out []T
	for {
		got := poll[T](t, r.ctx, cl)
		if len(got) == 0 {
			return out
		}
		out = append(out, got...)
	}
}

// heldIncident is the incident A opened after its only request: the one
// whose request the budget held.
func heldIncident(t *testing.T, alerts []schemas.Alert, requests []schemas.RetrainRequest) string {
	t.Helper()
	var held []string
	for _, a := range alerts {
		if a.Status == schemas.AlertFiring && !slices.Contains(requests[0].Alerts, a.Incident) {
			held = append(held, a.Incident)
		}
	}
	if len(held) != 1 {
		t.Fatalf("monitor A: want one incident after its request (held by the budget), got %v of %+v", held, alerts)
	}
	return held[0]
}

// Which restored incidents are held again: firing, asking for retrains
// (not fairness), named by no request, and not within the cooldown of a
// request of the champion when they fired; none while a request of the
// champion has no decided_at. The newest decided_at is the cooldown's
// start, whatever the order on the topic.
func TestRestoreRetrainPolicy(t *testing.T) {
	const model = "m"
	at := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	in := func(kind string, fired int) *incident {
		key := dedupKey(model, 1, kind, "", "price", "psi")
		return &incident{key: key, id: key + "/" + at(fired).Format(time.RFC3339), firing: true, firedAt: at(fired), since: at(fired - 5)}
	}
	named, suppressed, fairness, held, later := in(schemas.AlertDrift, 0), in(schemas.AlertAccuracy, 30), in(schemas.AlertFairness, 130), in(schemas.AlertDrift, 125), in(schemas.AlertErrorChange, 140)
	resolved := in(schemas.AlertPredictionDrift, 126)
	resolved.firing = false
	f := func(asked []pastRetrain) *Monitor {
		mo := &Monitor{cfg: Config{Model: model, Cooldown: 2 * time.Hour}, log: quietLog, askedRead: true, asked: asked, incidents: map[string]*incident{}}
		for i, x := range []*incident{named, suppressed, fairness, held, later, resolved} {
			mo.incidents[strconv.Itoa(i)] = x
		}
		mo.restoreRetrainPolicy(1)
		return mo
	}
	mo := f([]pastRetrain{
		{version: 1, decided: at(0), alerts: []string{named.id}},
		{version: 2, decided: at(90)}, // another champion's: no cooldown for v1
		{version: 0},                  // bootstrap, undated
	})
	if !mo.lastDrop.Equal(at(0)) {
		t.Errorf("cooldown restored from %s, want v1's request at %s", mo.lastDrop, at(0))
	}
	if mo.held == nil || !slices.Equal(mo.held.alerts, []string{held.id, later.id}) || mo.held.reason != schemas.AlertDrift || !mo.held.since.Equal(held.since) {
		t.Fatalf("held %+v, want incidents %s and %s, reason drift, since %s", mo.held, held.id, later.id, held.since)
	}
	if len(mo.asked) != 2 {
		t.Errorf("v1's requests stay in asked after its install: %+v", mo.asked)
	}
	if mo := f([]pastRetrain{{version: 1, decided: at(0), alerts: []string{named.id}}, {version: 1}}); mo.held != nil || !mo.lastDrop.Equal(at(0)) {
		t.Errorf("an undated request of v1: held %+v (want none), cooldown from %s", mo.held, mo.lastDrop)
	}
	if mo := f([]pastRetrain{{version: 1, decided: at(150)}, {version: 1, decided: at(0), alerts: []string{named.id}}}); !mo.lastDrop.Equal(at(150)) {
		t.Errorf("cooldown restored from %s, want the newest decided_at %s", mo.lastDrop, at(150))
	}
}
