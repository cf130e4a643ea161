package storefront

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

// hashEvent writes every field of e into h.
func hashEvent(h hash.Hash, e *schemas.Event) {
	fmt.Fprintf(h, "%q|%q|%q|%q|%q|%d|%q|%q|%q|%q|%q|%q|%q|%v|%d|%v|%d|%q|%v|%q|%d\n",
		e.EventID, e.Type, e.TS, e.UserID, e.SessionID, e.SchemaVersion, e.Device, e.Country,
		e.Referrer, e.Page, e.Query, e.Category, e.ProductID, e.Price, e.Quantity, e.CartValue,
		e.Items, e.OrderID, e.Amount, e.Currency, e.TimeMillis)
}

func digest(t *testing.T, cfg Config, d time.Duration, steps func() time.Duration) (string, int64) {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var n int64
	end := s.Now().Add(d)
	for s.Now().Before(end) {
		next := s.Now().Add(steps())
		if next.After(end) {
			next = end
		}
		s.Advance(next, func(e *schemas.Event) { hashEvent(h, e); n++ })
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Seed: 42, Scenario: ScenarioBoth, ShiftAt: 20 * time.Minute}
	// One big step versus irregular steps, some below a millisecond.
	a, na := digest(t, cfg, 45*time.Minute, func() time.Duration { return time.Hour })
	r := rand.New(rand.NewPCG(1, 2))
	b, nb := digest(t, cfg, 45*time.Minute, func() time.Duration {
		return time.Duration(r.Int64N(int64(20 * time.Second)))
	})
	if a != b || na != nb {
		t.Fatalf("same config, different events: %s (%d) vs %s (%d)", a, na, b, nb)
	}
	if na < 10000 {
		t.Fatalf("only %d events in 45 min", na)
	}
	cfg.Seed = 43
	c, _ := digest(t, cfg, 45*time.Minute, func() time.Duration { return time.Minute })
	if c == a {
		t.Fatal("different seeds gave the same events")
	}
}

var iso4217 = map[string]bool{"USD": true, "EUR": true, "GBP": true, "INR": true, "BRL": true}

// checkEvent checks e against the storefront contract (DESIGN.md) by hand.
func checkEvent(e *schemas.Event) error {
	for _, f := range []struct{ name, v string }{
		{"event_id", e.EventID}, {"user_id", e.UserID}, {"session_id", e.SessionID},
	} {
		if len(f.v) < 1 || len(f.v) > 128 {
			return fmt.Errorf("%s: length %d", f.name, len(f.v))
		}
	}
	if e.SchemaVersion != 1 {
		return fmt.Errorf("schema_version: %d", e.SchemaVersion)
	}
	ts, err := time.Parse(time.RFC3339Nano, e.TS)
	if err != nil {
		return fmt.Errorf("ts: %v", err)
	}
	if len(e.TS) != len("2026-11-23T10:15:00.123Z") || !strings.HasSuffix(e.TS, "Z") || e.TS[19] != '.' {
		return fmt.Errorf("ts: %q is not RFC 3339 UTC with milliseconds", e.TS)
	}
	if ts.UnixMilli() != e.TimeMillis || ts.Nanosecond()%1e6 != 0 {
		return fmt.Errorf("ts: %q does not match TimeMillis %d", e.TS, e.TimeMillis)
	}
	if e.Device == "" || e.Country == "" || e.Referrer == "" {
		return fmt.Errorf("segments missing: %q %q %q", e.Device, e.Country, e.Referrer)
	}
	if schemas.TopicOf(e.Type) == "" {
		return fmt.Errorf("type: %q", e.Type)
	}
	num := func(name string, v float64) error {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return fmt.Errorf("%s: %v", name, v)
		}
		return nil
	}
	switch e.Type {
	case schemas.ProductView, schemas.AddToCart, schemas.RemoveFromCart:
		if e.ProductID == "" || e.Category == "" {
			return fmt.Errorf("product_id/category missing")
		}
		if err := num("price", e.Price); err != nil {
			return err
		}
		if e.Type != schemas.ProductView && e.Quantity < 1 {
			return fmt.Errorf("quantity: %d", e.Quantity)
		}
	case schemas.CheckoutStart:
		if err := num("cart_value", e.CartValue); err != nil {
			return err
		}
		if e.Items < 1 {
			return fmt.Errorf("items: %d", e.Items)
		}
	case schemas.Purchase:
		if e.OrderID == "" || !iso4217[e.Currency] {
			return fmt.Errorf("order_id %q / currency %q", e.OrderID, e.Currency)
		}
		if err := num("amount", e.Amount); err != nil {
			return err
		}
	case schemas.Search:
		if e.Query == "" {
			return fmt.Errorf("query missing")
		}
	case schemas.PageView:
		if e.Page == "" {
			return fmt.Errorf("page missing")
		}
	}
	// Fields a type does not use stay absent.
	if e.Type != schemas.CheckoutStart && (!math.IsNaN(e.CartValue) || e.Items != -1) {
		return fmt.Errorf("cart_value/items set on %s", e.Type)
	}
	if e.Type != schemas.Purchase && (!math.IsNaN(e.Amount) || e.OrderID != "" || e.Currency != "") {
		return fmt.Errorf("order fields set on %s", e.Type)
	}
	return nil
}

func TestEventsValidAndOrdered(t *testing.T) {
	for _, sc := range Scenarios() {
		t.Run(string(sc), func(t *testing.T) {
			cfg := Config{Seed: 3, Scenario: sc, ShiftAt: 30 * time.Minute, Users: 500}
			s, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ids := map[string]bool{}
			types := map[string]int{}
			last := int64(math.MinInt64)
			r := rand.New(rand.NewPCG(9, 9))
			end := s.Now().Add(90 * time.Minute)
			for s.Now().Before(end) {
				from := s.Now().UnixMilli()
				to := s.Now().Add(time.Duration(r.Int64N(int64(3 * time.Minute))))
				s.Advance(to, func(e *schemas.Event) {
					if err := checkEvent(e); err != nil {
						t.Fatalf("%s %s: %v", e.EventID, e.Type, err)
					}
					if e.TimeMillis < last {
						t.Fatalf("%s at %s goes back in time (%d < %d)", e.EventID, e.TS, e.TimeMillis, last)
					}
					if e.TimeMillis < from || !time.UnixMilli(e.TimeMillis).Before(to) {
						t.Fatalf("%s at %s outside [%d, %s)", e.EventID, e.TS, from, to)
					}
					last = e.TimeMillis
					if ids[e.EventID] {
						t.Fatalf("duplicate event id %s", e.EventID)
					}
					ids[strings.Clone(e.EventID)] = true
					types[e.Type]++
				})
				if !s.Now().Equal(to) {
					t.Fatalf("Now() = %s after Advance(%s)", s.Now(), to)
				}
			}
			st := s.Stats()
			if st.Events != int64(len(ids)) {
				t.Fatalf("Stats.Events %d, counted %d", st.Events, len(ids))
			}
			for typ, n := range types {
				if st.Count(typ) != int64(n) {
					t.Errorf("Stats.Count(%s) = %d, counted %d", typ, st.Count(typ), n)
				}
			}
			for _, typ := range []string{schemas.PageView, schemas.Search, schemas.ProductView, schemas.AddToCart,
				schemas.RemoveFromCart, schemas.CheckoutStart, schemas.Purchase} {
				if types[typ] == 0 {
					t.Errorf("no %s events", typ)
				}
			}
			if st.Shifted != (sc != ScenarioNone) || (st.ShiftedSessions > 0) != (sc != ScenarioNone) {
				t.Errorf("Shifted %v, ShiftedSessions %d for %s", st.Shifted, st.ShiftedSessions, sc)
			}
		})
	}
}

func TestAdvanceBackwardsIsNoop(t *testing.T) {
	s, err := New(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(s.Now().Add(5*time.Minute), func(*schemas.Event) {})
	now := s.Now()
	n := 0
	s.Advance(now.Add(-time.Minute), func(*schemas.Event) { n++ })
	s.Advance(now, func(*schemas.Event) { n++ })
	if n != 0 || !s.Now().Equal(now) {
		t.Fatalf("advancing backwards emitted %d events, Now %s", n, s.Now())
	}
}

func TestPurchaseFollowsCheckout(t *testing.T) {
	type sess struct {
		checkout  *schemas.Event
		firstCart int64
		purchased bool
		user      string
	}
	sessions := map[string]*sess{}
	purchases := 0
	run(t, Config{Seed: 5, Scenario: ScenarioBoth, ShiftAt: 30 * time.Minute}, 90*time.Minute, time.Minute, func(e *schemas.Event) {
		ss := sessions[e.SessionID]
		if ss == nil {
			ss = &sess{firstCart: -1, user: e.UserID}
			sessions[strings.Clone(e.SessionID)] = ss
		}
		if ss.user != e.UserID {
			t.Fatalf("session %s has users %s and %s", e.SessionID, ss.user, e.UserID)
		}
		if ss.purchased {
			t.Fatalf("%s: %s after the purchase", e.SessionID, e.Type)
		}
		switch e.Type {
		case schemas.AddToCart:
			if ss.firstCart < 0 {
				ss.firstCart = e.TimeMillis
			}
		case schemas.CheckoutStart:
			if ss.firstCart < 0 || ss.checkout != nil {
				t.Fatalf("%s: checkout without cart or twice", e.SessionID)
			}
			c := *e
			ss.checkout = &c
		case schemas.Purchase:
			purchases++
			ss.purchased = true
			c := ss.checkout
			if c == nil {
				t.Fatalf("%s: purchase without checkout_started", e.SessionID)
			}
			if d := e.TimeMillis - c.TimeMillis; d < 60_000 || d > 600_000 {
				t.Fatalf("%s: purchase %d ms after checkout", e.SessionID, d)
			}
			if e.TimeMillis-ss.firstCart > 30*60_000 {
				t.Fatalf("%s: purchase more than 30 min after the first add_to_cart", e.SessionID)
			}
			if e.Amount != c.CartValue {
				t.Fatalf("%s: amount %v != cart value %v", e.SessionID, e.Amount, c.CartValue)
			}
		}
	})
	if purchases < 500 {
		t.Fatalf("only %d purchases", purchases)
	}
}

// cartRates returns the share of sessions with a cart and of carts that buy.
func cartRates(st Stats) (cart, buy float64) {
	return float64(st.CartSessions) / float64(st.Sessions), float64(st.Purchases) / float64(st.CartSessions)
}

func TestFunnelRatesNone(t *testing.T) {
	f := newFeaturizer()
	s, err := New(Config{Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	f.sim = s
	s.Advance(s.Now().Add(200*time.Minute), f.event)
	st := s.Stats()
	cart, buy := cartRates(st)
	perMin := float64(st.Sessions) / 200
	t.Logf("sessions/min %.1f, events/session %.2f, cart/session %.3f, purchase/cart %.3f, checkout/cart %.3f, searches/session %.2f, views/session %.2f",
		perMin, float64(st.Events)/float64(st.Sessions), cart, buy, float64(st.CheckoutsStarted)/float64(st.CartSessions),
		float64(st.Searches)/float64(st.Sessions), float64(st.ProductViews)/float64(st.Sessions))
	if perMin < 112 || perMin > 128 {
		t.Errorf("sessions/min %.1f, want ≈120", perMin)
	}
	if cart < 0.35 || cart > 0.45 {
		t.Errorf("cart/session %.3f, want ≈0.40", cart)
	}
	if buy < 0.25 || buy > 0.35 {
		t.Errorf("purchase/cart %.3f, want 0.25-0.35", buy)
	}

	// Learnable, not trivial: a logistic regression on the streaming
	// features, trained on the first half, scored on the second.
	train, test := split(f.labelled(), s.cfg.Start.Add(100*time.Minute).UnixMilli())
	m := fitLogReg(train)
	a := auc(m, test)
	t.Logf("logistic regression: %d train rows, %d test rows, positives %.3f, test AUC %.3f", len(train), len(test), mean(test), a)
	if a < 0.75 || a > 0.85 {
		t.Errorf("AUC %.3f, want 0.75-0.85", a)
	}
}

func TestCovariateShift(t *testing.T) {
	shift := 60 * time.Minute
	type agg struct{ price, views, sessions, mobile, social, cartValue, checkouts float64 }
	var side [2]agg // by the side of the shift the event's session started on
	s, err := New(Config{Seed: 21, Scenario: ScenarioCovariate, ShiftAt: shift})
	if err != nil {
		t.Fatal(err)
	}
	shifted := map[string]bool{}
	s.Advance(s.Now().Add(2*shift), func(e *schemas.Event) {
		sh, seen := shifted[e.SessionID]
		if !seen {
			// The first event of a session is at its start.
			sh = s.Shifted(time.UnixMilli(e.TimeMillis))
			shifted[strings.Clone(e.SessionID)] = sh
		}
		a := &side[int(b2f(sh))]
		switch e.Type {
		case schemas.ProductView:
			a.price += e.Price
			a.views++
		case schemas.CheckoutStart:
			a.cartValue += e.CartValue
			a.checkouts++
		}
		if !seen {
			a.sessions++
			a.mobile += b2f(e.Device == "mobile")
			a.social += b2f(e.Referrer == "social")
		}
	})
	pre, post := side[0], side[1]
	priceRatio := (post.price / post.views) / (pre.price / pre.views)
	cartRatio := (post.cartValue / post.checkouts) / (pre.cartValue / pre.checkouts)
	mPre, mPost := pre.mobile/pre.sessions, post.mobile/post.sessions
	sPre, sPost := pre.social/pre.sessions, post.social/post.sessions
	t.Logf("mean viewed price %.2f → %.2f (x%.2f), mean checkout cart value x%.2f, mobile %.3f → %.3f, social %.3f → %.3f",
		pre.price/pre.views, post.price/post.views, priceRatio, cartRatio, mPre, mPost, sPre, sPost)
	if priceRatio < 1.7 || priceRatio > 1.9 {
		t.Errorf("price ratio %.2f, want ≈1.8", priceRatio)
	}
	if cartRatio < 1.5 || cartRatio > 2.1 {
		t.Errorf("cart value ratio %.2f, want ≈1.8", cartRatio)
	}
	if mPre < 0.5 || mPre > 0.6 || mPost < 0.75 || mPost > 0.85 {
		t.Errorf("mobile share %.3f → %.3f, want ≈0.55 → ≈0.80", mPre, mPost)
	}
	if sPre < 0.16 || sPre > 0.24 || sPost < 0.35 || sPost > 0.45 {
		t.Errorf("social share %.3f → %.3f, want ≈0.20 → ≈0.40", sPre, sPost)
	}
}

// correlation returns Pearson's correlation of x and y.
func correlation(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func TestConceptShift(t *testing.T) {
	for _, sc := range []Scenario{ScenarioConcept, ScenarioBoth} {
		t.Run(string(sc), func(t *testing.T) {
			shift := 150 * time.Minute
			f := newFeaturizer()
			s, err := New(Config{Seed: 31, Scenario: sc, ShiftAt: shift})
			if err != nil {
				t.Fatal(err)
			}
			f.sim = s
			s.Advance(s.Now().Add(2*shift), f.event)

			// Per cart session: log cart value against purchased.
			var cv, bought [2][]float64
			for _, ss := range f.sessions {
				if ss.adds == 0 {
					continue
				}
				k := int(b2f(ss.shifted))
				cv[k] = append(cv[k], math.Log1p(ss.cartValue/50))
				bought[k] = append(bought[k], b2f(ss.purchase >= 0))
			}
			before, after := correlation(cv[0], bought[0]), correlation(cv[1], bought[1])
			t.Logf("corr(log cart value, purchase): %.3f before, %.3f after (%d/%d carts)", before, after, len(cv[0]), len(cv[1]))
			if before > -0.1 || after < 0.1 {
				t.Errorf("cart value effect does not flip: %.3f → %.3f", before, after)
			}

			rows := f.labelled()
			var pre, post []row
			for _, r := range rows {
				if r.shifted {
					post = append(post, r)
				} else if r.t < s.cfg.Start.Add(shift).UnixMilli() {
					pre = append(pre, r)
				}
			}
			old := fitLogReg(pre)
			retrainOn, evalOn := split(post, s.cfg.Start.Add(shift+shift/2).UnixMilli())
			retrained := fitLogReg(retrainOn)
			aOld, aNew := auc(old, evalOn), auc(retrained, evalOn)
			t.Logf("AUC on shifted data: pre-shift model %.3f, retrained %.3f (%d/%d/%d rows)", aOld, aNew, len(pre), len(retrainOn), len(evalOn))
			if aOld > 0.5 {
				t.Errorf("pre-shift model AUC %.3f after the shift, want <= 0.5", aOld)
			}
			if aNew < 0.74 { // ≈ 0.75+, with a margin
				t.Errorf("retrained model AUC %.3f, want >= 0.75", aNew)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Users != DefaultUsers || c.SessionsPerMinute != DefaultSessionsPerMinute || !c.Start.Equal(DefaultStart) || c.Scenario != ScenarioNone {
		t.Fatalf("defaults not applied: %+v", c)
	}
	for _, bad := range []Config{
		{Users: -1},
		{SessionsPerMinute: -1},
		{SessionsPerMinute: math.NaN()},
		{Scenario: "sideways"},
		{ShiftAt: -time.Second},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v: no error", bad)
		}
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v): no error", bad)
		}
	}
	if _, err := ParseScenario("both"); err != nil {
		t.Fatal(err)
	}
	s, _ := New(Config{Scenario: ScenarioConcept, ShiftAt: time.Hour})
	if s.Shifted(DefaultStart.Add(time.Hour-time.Millisecond)) || !s.Shifted(DefaultStart.Add(time.Hour)) {
		t.Fatal("Shifted boundary wrong")
	}
	n, _ := New(Config{})
	if n.Shifted(DefaultStart.Add(1000 * time.Hour)) {
		t.Fatal("scenario none shifted")
	}
}

func mean(rows []row) float64 {
	s := 0.0
	for _, r := range rows {
		s += r.label
	}
	return s / float64(len(rows))
}

func TestAllocsPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	s, err := New(Config{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s.Advance(s.Now().Add(30*time.Minute), nil) // fill the pipeline
	n := 0
	count := func(*schemas.Event) { n++ }
	allocs := testing.AllocsPerRun(10, func() { s.Advance(s.Now().Add(time.Minute), count) })
	perEvent := allocs / (float64(n) / 11) // AllocsPerRun runs once more to warm up
	t.Logf("%.0f allocations per simulated minute, %.3f per event", allocs, perEvent)
	if perEvent > 0.25 {
		t.Errorf("%.3f allocations per event, want about one per session", perEvent)
	}
}

func BenchmarkAdvance(b *testing.B) {
	s, err := New(Config{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	// Warm up: fill the pipeline of in-flight sessions.
	s.Advance(s.Now().Add(30*time.Minute), func(*schemas.Event) {})
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for n < b.N {
		s.Advance(s.Now().Add(time.Second), func(*schemas.Event) { n++ })
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
