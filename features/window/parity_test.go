package window_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/driftline/driftline/features"
	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// handWritten is a frozen copy of the catalog computation of package
// features (features/state.go: partState.apply and compute, as of commit
// f447b37), kept here so the parity of the YAML definitions is checked
// against what the first model was trained on even while that file is
// rewritten. Only the bookkeeping for labels is left out.
type handWritten struct {
	sessions map[string]*hwSession
	users    map[string]*hwUser
}

type hwSession struct {
	id, userID                                            string
	device, referrer                                      string
	firstMillis, lastMillis                               int64
	events, productViews, searches, cartAdds, cartRemoves int
	cartValue, viewedPriceSum                             float64
}

type hwUser struct {
	sessions    int
	lastSession string
	recent      []int64
	olderCount  int
	olderLastMs int64
}

func (u *hwUser) addPurchase(ms int64) {
	if len(u.recent) == 8 {
		u.olderCount++
		u.olderLastMs = max(u.olderLastMs, u.recent[0])
		u.recent = append(u.recent[:0], u.recent[1:]...)
	}
	u.recent = append(u.recent, ms)
}

func (u *hwUser) purchasesBefore(ms int64) (n int, lastMs int64) {
	n, lastMs = u.olderCount, u.olderLastMs
	for _, t := range u.recent {
		if t <= ms {
			n++
			lastMs = max(lastMs, t)
		}
	}
	return n, lastMs
}

func (p *handWritten) apply(e *schemas.Event) *hwSession {
	s := p.sessions[e.SessionID]
	u := p.users[e.UserID]
	if u == nil {
		u = &hwUser{}
		p.users[e.UserID] = u
	}
	if s == nil {
		s = &hwSession{id: e.SessionID, userID: e.UserID, firstMillis: e.TimeMillis, device: e.Device, referrer: e.Referrer}
		p.sessions[s.id] = s
		if u.lastSession != s.id {
			u.sessions++
			u.lastSession = s.id
		}
	}
	if schemas.TopicOf(e.Type) != schemas.TopicTransactions {
		s.events++
	}
	s.lastMillis = max(s.lastMillis, e.TimeMillis)
	s.firstMillis = min(s.firstMillis, e.TimeMillis)
	switch e.Type {
	case schemas.ProductView:
		s.productViews++
		s.viewedPriceSum += e.Price
	case schemas.Search:
		s.searches++
	case schemas.AddToCart:
		s.cartAdds++
		s.cartValue += e.Price * float64(e.Quantity)
	case schemas.RemoveFromCart:
		s.cartRemoves++
		s.cartValue = max(0, s.cartValue-e.Price*float64(e.Quantity))
	case schemas.CheckoutStart:
		s.cartValue = e.CartValue
	case schemas.Purchase:
		u.addPurchase(e.TimeMillis)
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (p *handWritten) compute(e *schemas.Event, s *hwSession) []float64 {
	u := p.users[e.UserID]
	mean := 0.0
	if s.productViews > 0 {
		mean = s.viewedPriceSum / float64(s.productViews)
	}
	n, last := u.purchasesBefore(e.TimeMillis)
	hours := 720.0
	if last > 0 {
		hours = min(720, float64(e.TimeMillis-last)/3.6e6)
	}
	return []float64{
		float64(s.events), float64(s.productViews), float64(s.searches), float64(s.cartAdds), float64(s.cartRemoves),
		s.cartValue, mean, float64(e.TimeMillis-s.firstMillis) / 60000, b2f(e.Type == schemas.CheckoutStart),
		float64(u.sessions), float64(n), hours,
		b2f(s.device == "mobile"), b2f(s.referrer == "ads"), b2f(s.referrer == "email"),
	}
}

// simulated returns a storefront stream (copies: the simulator reuses its
// event) covering the covariate and concept shift.
func simulated(t *testing.T, d time.Duration) []schemas.Event {
	t.Helper()
	sim, err := storefront.New(storefront.Config{
		Seed: 7, Start: time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC), Users: 3000,
		Scenario: storefront.ScenarioBoth, ShiftAt: d / 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	var evs []schemas.Event
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) { evs = append(evs, *e) })
	return evs
}

// TestParityWithHandWrittenCatalog feeds a simulated storefront through the
// YAML definitions (purchase_propensity.yaml) and through the hand-written
// catalog, and compares the vectors at every trigger event of the model
// (add_to_cart, checkout_started), feature by feature, to 1e-9: the
// integration changes nothing for the model. Fed in event-time order (the
// simulator's) and with each input topic delayed differently (as the three
// topics are consumed concurrently), within the allowed lateness.
func TestParityWithHandWrittenCatalog(t *testing.T) {
	evs := simulated(t, 3*time.Hour)
	spec := features.PurchasePropensity()
	defs := window.PurchasePropensity()
	// The hand-written catalog's names, in its order (features/state.go at f447b37).
	catalog := []string{"session_events", "session_product_views", "session_searches",
		"session_cart_adds", "session_cart_removes", "session_cart_value",
		"session_mean_viewed_price", "session_minutes", "is_checkout",
		"user_sessions", "user_purchases", "hours_since_last_purchase",
		"device_mobile", "referrer_ads", "referrer_email"}
	if !slices.Equal(defs.Names(), spec.Features) || !slices.Equal(defs.Names(), catalog) {
		t.Fatalf("definitions %v, model spec %v", defs.Names(), spec.Features)
	}
	orders := map[string]func([]schemas.Event) []schemas.Event{
		"event time": func(e []schemas.Event) []schemas.Event { return e },
		// Clickstream read 20 s behind, cart 5 s, transactions on time.
		"topics skewed": skew(20_000, 5_000, 0),
		// Transactions read 50 s ahead of the cart topic: purchases are
		// applied before the cart events that precede them, and must not
		// leak into their vectors (point_in_time).
		"transactions ahead": skew(40_000, 50_000, 0),
	}
	for name, order := range orders {
		t.Run(name, func(t *testing.T) {
			stream := order(evs)
			eng, err := window.New(window.Config{Definitions: defs, AllowedLateness: time.Minute}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			hw := &handWritten{sessions: map[string]*hwSession{}, users: map[string]*hwUser{}}
			vec := make([]float64, eng.Len())
			triggers, worst := 0, 0.0
			for i := range stream {
				e := &stream[i]
				if err := eng.Update(e); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				s := hw.apply(e)
				if !slices.Contains(spec.Triggers, e.Type) {
					continue
				}
				triggers++
				want := hw.compute(e, s)
				eng.Vector(e, vec)
				for j := range want {
					diff := math.Abs(vec[j] - want[j])
					worst = max(worst, diff/math.Max(1, math.Abs(want[j])))
					if diff > 1e-9*math.Max(1, math.Abs(want[j])) {
						t.Fatalf("trigger %d (%s %s at %d): %s = %v, hand-written %v", triggers, e.Type, e.SessionID, e.TimeMillis, defs.Names()[j], vec[j], want[j])
					}
				}
			}
			if triggers < 1000 {
				t.Fatalf("only %d trigger events", triggers)
			}
			t.Logf("%d events, %d trigger vectors equal; largest relative difference %.3g", len(stream), triggers, worst)
		})
	}
}

// skew delays each input topic by a fixed time (within the 1 min of
// lateness); ties keep event order.
func skew(clickstream, cart, transactions int64) func([]schemas.Event) []schemas.Event {
	delay := map[string]int64{schemas.TopicClickstream: clickstream, schemas.TopicCart: cart, schemas.TopicTransactions: transactions}
	return func(e []schemas.Event) []schemas.Event {
		out := slices.Clone(e)
		slices.SortStableFunc(out, func(a, b schemas.Event) int {
			return int(a.TimeMillis + delay[schemas.TopicOf(a.Type)] - b.TimeMillis - delay[schemas.TopicOf(b.Type)])
		})
		return out
	}
}

// TestParityShuffledWithinSession shuffles the simulated stream within the
// lateness (every event up to 30 s late): the one difference by design is
// the cart value, which the hand-written catalog clamped at 0 in arrival
// order (a remove applied before its add); every other feature stays equal,
// the point-in-time purchase features included (see docs/windows.md).
func TestParityShuffledWithinSession(t *testing.T) {
	evs := simulated(t, time.Hour)
	rng := rand.New(rand.NewPCG(1, 2))
	stream := slices.Clone(evs)
	arrive := make(map[string]int64, len(stream))
	for _, e := range stream {
		arrive[e.EventID] = e.TimeMillis + rng.Int64N(30_000)
	}
	slices.SortStableFunc(stream, func(a, b schemas.Event) int { return int(arrive[a.EventID] - arrive[b.EventID]) })
	defs := window.PurchasePropensity()
	eng, err := window.New(window.Config{Definitions: defs, AllowedLateness: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hw := &handWritten{sessions: map[string]*hwSession{}, users: map[string]*hwUser{}}
	vec := make([]float64, eng.Len())
	differ := map[string]int{}
	triggers := 0
	for i := range stream {
		e := &stream[i]
		if err := eng.Update(e); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		s := hw.apply(e)
		if !schemas.IsCartEvent(e.Type) {
			continue
		}
		triggers++
		want := hw.compute(e, s)
		eng.Vector(e, vec)
		for j := range want {
			if math.Abs(vec[j]-want[j]) > 1e-9*math.Max(1, math.Abs(want[j])) {
				differ[defs.Names()[j]]++
			}
		}
	}
	t.Logf("%d trigger vectors; features that differ (count): %v", triggers, differ)
	for name := range differ {
		switch name {
		case "session_cart_value":
		default:
			t.Errorf("%s differs on a shuffled stream (%d vectors)", name, differ[name])
		}
	}
}
