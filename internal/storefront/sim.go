package storefront

import (
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/driftline/driftline/schemas"
)

// Funnel parameters (see the package doc).
const (
	gapMinMs      = 10_000 // gap between two events of a session
	gapMaxMs      = 90_000
	purchaseMinMs = 60_000 // checkout_started → purchase
	purchaseMaxMs = 600_000

	maxPages        = 3
	maxSearches     = 2
	maxViews        = 8
	maxAdds         = 3
	searchProb      = 0.40 // a session searches (0.70 when it came from search)
	searchProbRef   = 0.70
	primaryCatProb  = 0.70 // a product view stays in the session's category
	cartBase        = 0.09 // P(cart) = cartBase + cartPerView*views
	cartPerView     = 0.07
	removeProb      = 0.20
	abandonCheckout = 0.35 // a non-buying cart still starts checkout
	noiseSigma      = 0.30 // noise on the purchase logit

	loyalShare    = 0.10 // the first 10% of users …
	loyalSessions = 0.30 // … get 30% of the draws (plus their uniform share)
	userRedraws   = 4    // redraws when the drawn user is mid-session
)

// buyRule is the ground truth of the purchase decision:
//
//	logit = intercept + signal*(views*min(views,8) + cart*log1p(cart_value/50)
//	        + device*[device==dev] + email*[referrer email]
//	        + purchases*min(user_purchases,3)) + N(0, noiseSigma²)
type buyRule struct {
	intercept, views, cart, device, email, purchases float64
	dev                                              uint8
}

// signal scales the slopes of both rules: at 1.3 a logistic regression on
// the streaming features reaches ROC AUC ≈ 0.78 (at 1.0 only ≈ 0.74). The
// intercepts put the purchase rate of carts at ≈ 30% under either rule.
const signal = 1.3

var (
	baseRule    = buyRule{intercept: -2.9, views: 0.35, cart: -0.9, device: 0.7, dev: devDesktop, email: 0.9, purchases: 0.5}
	conceptRule = buyRule{intercept: -1.3, views: -0.25, cart: 0.9, device: 0.9, dev: devMobile, email: -0.6, purchases: 0.5}
)

func (r *buyRule) logit(views int, cartValue float64, dev, ref uint8, purchases int32) float64 {
	x := r.views*float64(min(views, 8)) + r.cart*math.Log1p(cartValue/50) + r.purchases*float64(min(purchases, 3))
	if dev == r.dev {
		x += r.device
	}
	if ref == refEmail {
		x += r.email
	}
	return r.intercept + signal*x
}

// Event kinds, indices into kindType.
type kind uint8

const (
	kPageView kind = iota
	kSearch
	kProductView
	kAddToCart
	kRemoveFromCart
	kCheckout
	kPurchase
	numKinds
)

var kindType = [numKinds]string{
	schemas.PageView, schemas.Search, schemas.ProductView, schemas.AddToCart,
	schemas.RemoveFromCart, schemas.CheckoutStart, schemas.Purchase,
}

// pevent is one pending event of a session, formatted into an Event on emit.
type pevent struct {
	t     int64   // event time, Unix ms
	value float64 // price (view/add/remove), cart value (checkout), amount (purchase)
	idOff int32   // session.str[idOff:idEnd] is the event id,
	idEnd int32   // session.str[idEnd:tsEnd] the timestamp
	tsEnd int32
	prod  int32 // product index (view/add/remove)
	qty   int32 // quantity (add/remove), items (checkout)
	aux   uint8 // page index (page_view), query index (search)
	kind  kind
	first bool // first add_to_cart of the session
}

// session is a generated session whose events are emitted over time. Sessions
// are recycled once their last event is emitted.
type session struct {
	si      int32 // index in Simulator.slab
	num     uint64
	user    int32
	dev     uint8
	ref     uint8
	shifted bool
	str     string // session id, order id, then id+timestamp of every event
	sidEnd  int32
	oidOff  int32
	oidEnd  int32
	idx     int // next event to emit
	events  []pevent
}

type user struct {
	id        string
	device    uint8
	country   uint8
	purchases int32   // purchases with event time before the latest session start
	pending   []int64 // purchase times not yet counted
	busyUntil int64   // last event time of the user's latest session
}

// settle counts the pending purchases that happened before t.
func (u *user) settle(t int64) {
	if len(u.pending) == 0 {
		return
	}
	keep := u.pending[:0]
	for _, pt := range u.pending {
		if pt < t {
			u.purchases++
		} else {
			keep = append(keep, pt)
		}
	}
	u.pending = keep
}

// Stats counts what a Simulator has emitted so far.
type Stats struct {
	Events           int64 // events emitted
	PageViews        int64
	Searches         int64
	ProductViews     int64
	AddToCarts       int64
	RemoveFromCarts  int64
	CheckoutsStarted int64
	Purchases        int64
	Sessions         int64   // sessions whose first event was emitted
	CartSessions     int64   // sessions whose first add_to_cart was emitted
	ShiftedSessions  int64   // sessions (of Sessions) that started under the shift
	Revenue          float64 // sum of purchase amounts, in price units, currencies mixed
	Shifted          bool    // whether the shift has begun at Now
	Now              time.Time
}

// Count returns the number of emitted events of the given type.
func (st Stats) Count(eventType string) int64 {
	switch eventType {
	case schemas.PageView:
		return st.PageViews
	case schemas.Search:
		return st.Searches
	case schemas.ProductView:
		return st.ProductViews
	case schemas.AddToCart:
		return st.AddToCarts
	case schemas.RemoveFromCart:
		return st.RemoveFromCarts
	case schemas.CheckoutStart:
		return st.CheckoutsStarted
	case schemas.Purchase:
		return st.Purchases
	}
	return 0
}

// Simulator generates the events of a simulated storefront in event-time
// order. Create one with New; it is not safe for concurrent use.
type Simulator struct {
	cfg     Config
	rng     *rand.Rand
	startMs int64
	shiftMs int64 // math.MaxInt64 when the scenario never shifts
	nowMs   int64 // every event with t < nowMs has been emitted
	now     time.Time

	arrival      float64 // next session start, ms after startMs
	meanArrivalM float64 // mean gap between session starts, ms

	products []product
	users    []user
	nextUser int64 // id of the next user to replace a churned one
	loyal    int
	sessions uint64 // sessions generated

	queue []qentry   // min-heap by (next event time, session number)
	slab  []*session // every session ever allocated; queue entries index it
	free  []int32    // slab indices of finished sessions

	seedStr string // decimal seed
	buf     []byte // session string being built
	dayMs   int64  // day cached in dayStr
	dayStr  [11]byte
	viewed  []int32   // product views of the session being built
	prices  []float64 // their prices
	lines   []cartLine

	ev    schemas.Event
	blank schemas.Event
	stats Stats
}

// qentry is a queued session (an index into Simulator.slab) with the key of
// its next event cached. It holds no pointer, so heap moves need no write
// barriers.
type qentry struct {
	t   int64
	num uint64
	si  int32
}

type cartLine struct {
	prod  int32
	price float64
	qty   int32
}

// New returns a simulator for cfg (validated and defaulted with
// cfg.Validate) positioned at cfg.Start.
func New(cfg Config) (*Simulator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Simulator{
		cfg:          cfg,
		rng:          rand.New(rand.NewPCG(cfg.Seed, 0x5f0dd7f1e5a1e0b3)),
		startMs:      cfg.Start.UnixMilli(),
		now:          cfg.Start,
		meanArrivalM: 60_000 / cfg.SessionsPerMinute,
		seedStr:      strconv.FormatUint(cfg.Seed, 10),
		blank:        schemas.NewEvent(),
		dayMs:        math.MinInt64,
	}
	s.nowMs = s.startMs
	s.shiftMs = math.MaxInt64
	if cfg.Scenario != ScenarioNone {
		s.shiftMs = s.startMs + cfg.ShiftAt.Milliseconds()
	}
	s.products = newCatalog(s.rng)
	s.users = make([]user, cfg.Users)
	var b []byte
	ends := make([]int, cfg.Users)
	for i := range s.users {
		b = append(b, "u-"...)
		b = strconv.AppendInt(b, int64(i), 10)
		ends[i] = len(b)
	}
	ids, start := string(b), 0
	for i := range s.users {
		s.users[i] = user{
			id:        ids[start:ends[i]],
			device:    uint8(pick(s.rng, deviceWeights[:])),
			country:   uint8(pick(s.rng, countryWeights[:])),
			busyUntil: math.MinInt64,
		}
		start = ends[i]
	}
	s.loyal = max(1, int(float64(cfg.Users)*loyalShare))
	s.nextUser = int64(cfg.Users)
	s.arrival = s.rng.ExpFloat64() * s.meanArrivalM
	s.stats.Now = cfg.Start
	return s, nil
}

// Config returns the validated configuration.
func (s *Simulator) Config() Config { return s.cfg }

// Now returns the event time reached: every event before it has been emitted.
func (s *Simulator) Now() time.Time { return s.now }

// ShiftTime returns the event time at which the scenario's shift begins, and
// false for ScenarioNone.
func (s *Simulator) ShiftTime() (time.Time, bool) {
	if s.cfg.Scenario == ScenarioNone {
		return time.Time{}, false
	}
	return s.cfg.Start.Add(s.cfg.ShiftAt), true
}

// Shifted reports whether sessions starting at event time t are shifted.
func (s *Simulator) Shifted(t time.Time) bool {
	at, ok := s.ShiftTime()
	return ok && !t.Before(at)
}

// Stats returns the counts so far.
func (s *Simulator) Stats() Stats {
	st := s.stats
	st.Now = s.now
	st.Shifted = s.Shifted(s.now)
	return st
}

// Advance generates every event with event time before t, in non-decreasing
// event-time order, and calls emit for each. The *Event passed to emit is
// reused after emit returns: copy what you keep (its strings are immutable
// and may be kept). Sessions that started before t but continue after it
// emit the rest of their events in later calls. A t at or before Now does
// nothing. A nil emit discards the events (they still count in Stats).
func (s *Simulator) Advance(t time.Time, emit func(*schemas.Event)) {
	limit := ceilMillis(t)
	if limit <= s.nowMs {
		return
	}
	if emit == nil {
		emit = func(*schemas.Event) {}
	}
	for {
		next := s.startMs + int64(s.arrival)
		// Every session starting before next is generated, and sessions
		// never emit before their start: events before next are final.
		s.emitBefore(min(next, limit), emit)
		if next >= limit {
			break
		}
		s.startSession(next)
		s.arrival += s.rng.ExpFloat64() * s.meanArrivalM
	}
	s.nowMs = limit
	if t.After(s.now) {
		s.now = t
	}
}

// ceilMillis returns the smallest Unix millisecond m with m >= t.
func ceilMillis(t time.Time) int64 {
	ms := t.UnixMilli()
	if time.UnixMilli(ms).Before(t) {
		ms++
	}
	return ms
}

func (s *Simulator) emitBefore(limit int64, emit func(*schemas.Event)) {
	for len(s.queue) > 0 && s.queue[0].t < limit {
		sess := s.slab[s.queue[0].si]
		s.emitEvent(sess, emit)
		sess.idx++
		if sess.idx == len(sess.events) {
			s.popQueue()
			sess.str = ""
			s.free = append(s.free, sess.si)
		} else {
			s.queue[0].t = sess.events[sess.idx].t
			s.down(0)
		}
	}
}

func (s *Simulator) emitEvent(sess *session, emit func(*schemas.Event)) {
	pe := &sess.events[sess.idx]
	u := &s.users[sess.user]
	e := &s.ev
	*e = s.blank
	e.EventID = sess.str[pe.idOff:pe.idEnd]
	e.TS = sess.str[pe.idEnd:pe.tsEnd]
	e.TimeMillis = pe.t
	e.Type = kindType[pe.kind]
	e.UserID = u.id
	e.SessionID = sess.str[:sess.sidEnd]
	e.Device = deviceNames[sess.dev]
	e.Country = countryNames[u.country]
	e.Referrer = referrerNames[sess.ref]

	st := &s.stats
	st.Events++
	if sess.idx == 0 {
		st.Sessions++
		if sess.shifted {
			st.ShiftedSessions++
		}
	}
	switch pe.kind {
	case kPageView:
		st.PageViews++
		e.Page = pages[pe.aux]
	case kSearch:
		st.Searches++
		e.Page = "/search"
		e.Query = categories[pe.aux/3].queries[pe.aux%3]
	case kProductView, kAddToCart, kRemoveFromCart:
		p := &s.products[pe.prod]
		e.ProductID = p.id
		e.Category = categories[p.cat].name
		e.Price = pe.value
		switch pe.kind {
		case kProductView:
			st.ProductViews++
		case kAddToCart:
			st.AddToCarts++
			e.Quantity = int(pe.qty)
			if pe.first {
				st.CartSessions++
			}
		default:
			st.RemoveFromCarts++
			e.Quantity = int(pe.qty)
		}
	case kCheckout:
		st.CheckoutsStarted++
		e.CartValue = pe.value
		e.Items = int(pe.qty)
	case kPurchase:
		st.Purchases++
		st.Revenue += pe.value
		e.OrderID = sess.str[sess.oidOff:sess.oidEnd]
		e.Amount = pe.value
		e.Currency = countryCurrency[u.country]
	}
	emit(e)
}

// replaceUser puts a new user, with no history, in a slot whose user left.
func (s *Simulator) replaceUser(u *user) {
	b := append(s.buf[:0], "u-"...)
	b = strconv.AppendInt(b, int64(s.nextUser), 10)
	s.nextUser++
	*u = user{
		id:        string(b),
		device:    uint8(pick(s.rng, deviceWeights[:])),
		country:   uint8(pick(s.rng, countryWeights[:])),
		busyUntil: math.MinInt64,
		pending:   u.pending[:0],
	}
}

// pickUser draws a user, preferring one who is not mid-session at t.
func (s *Simulator) pickUser(t int64) int {
	var i int
	for range userRedraws {
		if s.rng.Float64() < loyalSessions {
			i = s.rng.IntN(s.loyal)
		} else {
			i = s.rng.IntN(len(s.users))
		}
		if s.users[i].busyUntil < t {
			break
		}
	}
	return i
}

func (s *Simulator) gap() int64 { return gapMinMs + s.rng.Int64N(gapMaxMs-gapMinMs+1) }

// startSession draws a whole session starting at t and queues its events.
func (s *Simulator) startSession(t int64) {
	rng := s.rng
	shifted := t >= s.shiftMs
	cov := shifted && s.cfg.Scenario.covariate()
	concept := shifted && s.cfg.Scenario.concept()

	ui := s.pickUser(t)
	u := &s.users[ui]
	if u.busyUntil < t && s.cfg.Churn > 0 && rng.Float64() < s.cfg.Churn {
		s.replaceUser(u)
	}
	u.settle(t)

	var sess *session
	if n := len(s.free); n > 0 {
		sess = s.slab[s.free[n-1]]
		s.free = s.free[:n-1]
	} else {
		sess = &session{si: int32(len(s.slab))}
		s.slab = append(s.slab, sess)
	}
	sess.num = s.sessions
	s.sessions++
	sess.user = int32(ui)
	sess.shifted = shifted
	sess.idx = 0
	sess.events = sess.events[:0]
	sess.dev = u.device
	if cov && sess.dev != devMobile && rng.Float64() < covMobileSwitch {
		sess.dev = devMobile
	}
	if cov {
		sess.ref = uint8(pick(rng, referrerWeightsShifted[:]))
	} else {
		sess.ref = uint8(pick(rng, referrerWeights[:]))
	}
	priceMult := 1.0
	if cov {
		priceMult = covPriceFactor
	}

	// add queues an event one gap after the previous one (at t for the first).
	add := func(pe pevent) {
		if len(sess.events) > 0 {
			t += s.gap()
		}
		pe.t = t
		sess.events = append(sess.events, pe)
	}

	// Browsing: a landing page, more pages and searches in random order.
	primary := pick(rng, categoryWeights[:])
	landing := pageHome
	switch sess.ref {
	case refSearch, refAds:
		landing = pageCat0 + primary
	case refEmail:
		landing = pageDeals
	}
	add(pevent{kind: kPageView, aux: uint8(landing)})
	pagesLeft := rng.IntN(maxPages)
	searchesLeft := 0
	sp := searchProb
	if sess.ref == refSearch {
		sp = searchProbRef
	}
	if rng.Float64() < sp {
		searchesLeft = 1 + rng.IntN(maxSearches)
	}
	for pagesLeft+searchesLeft > 0 {
		if rng.IntN(pagesLeft+searchesLeft) < searchesLeft {
			searchesLeft--
			add(pevent{kind: kSearch, aux: uint8(primary*3 + rng.IntN(3))})
		} else {
			pagesLeft--
			add(pevent{kind: kPageView, aux: uint8(rng.IntN(numPages))})
		}
	}

	// Product views.
	views := 1 + rng.IntN(maxViews)
	s.viewed, s.prices = s.viewed[:0], s.prices[:0]
	for range views {
		c := primary
		if rng.Float64() >= primaryCatProb {
			c = pick(rng, categoryWeights[:])
		}
		p := int32(c*productsPerCategory + rng.IntN(productsPerCategory))
		price := round2(s.products[p].base * priceMult)
		s.viewed = append(s.viewed, p)
		s.prices = append(s.prices, price)
		add(pevent{kind: kProductView, prod: p, value: price})
	}

	bought := false
	if rng.Float64() < cartBase+cartPerView*float64(views) {
		// Cart: adds of viewed products, maybe one remove.
		s.lines = s.lines[:0]
		items := int32(0)
		value := 0.0
		adds := 1 + rng.IntN(maxAdds)
		for i := range adds {
			j := rng.IntN(len(s.viewed))
			q := int32(1)
			switch x := rng.Float64(); {
			case x < 0.10:
				q = 3
			case x < 0.40:
				q = 2
			}
			s.lines = append(s.lines, cartLine{prod: s.viewed[j], price: s.prices[j], qty: q})
			items += q
			value += s.prices[j] * float64(q)
			add(pevent{kind: kAddToCart, prod: s.viewed[j], value: s.prices[j], qty: q, first: i == 0})
		}
		if items >= 2 && rng.Float64() < removeProb {
			l := &s.lines[rng.IntN(len(s.lines))]
			q := 1 + rng.Int32N(l.qty)
			q = min(q, items-1)
			l.qty -= q
			items -= q
			value -= l.price * float64(q)
			add(pevent{kind: kRemoveFromCart, prod: l.prod, value: l.price, qty: q})
		}
		value = round2(max(value, 0))

		// The purchase decision (package doc).
		rule := &baseRule
		if concept {
			rule = &conceptRule
		}
		logit := rule.logit(views, value, sess.dev, sess.ref, u.purchases)
		logit += noiseSigma * rng.NormFloat64()
		bought = rng.Float64() < sigmoid(logit)
		if bought || rng.Float64() < abandonCheckout {
			add(pevent{kind: kCheckout, value: value, qty: items})
		}
		if bought {
			t += purchaseMinMs + s.rng.Int64N(purchaseMaxMs-purchaseMinMs+1)
			sess.events = append(sess.events, pevent{kind: kPurchase, value: value, t: t})
		}
	}
	s.finishSession(sess, u, bought)
}

// finishSession formats the session's ids and timestamps into one string,
// records the user's purchase and queues the session.
func (s *Simulator) finishSession(sess *session, u *user, bought bool) {
	b := append(s.buf[:0], "s-"...)
	b = strconv.AppendUint(b, sess.num, 10)
	sess.sidEnd = int32(len(b))
	sess.oidOff, sess.oidEnd = sess.sidEnd, sess.sidEnd
	if bought {
		b = append(b, "o-"...)
		b = append(b, s.seedStr...)
		b = append(b, '-')
		b = strconv.AppendUint(b, sess.num, 10)
		sess.oidEnd = int32(len(b))
	}
	for k := range sess.events {
		pe := &sess.events[k]
		pe.idOff = int32(len(b))
		b = append(b, "e-"...)
		b = append(b, s.seedStr...)
		b = append(b, '-')
		b = strconv.AppendUint(b, sess.num, 10)
		b = append(b, '-')
		b = strconv.AppendInt(b, int64(k), 10)
		pe.idEnd = int32(len(b))
		b = s.appendTS(b, pe.t)
		pe.tsEnd = int32(len(b))
	}
	sess.str = string(b)
	s.buf = b

	last := sess.events[len(sess.events)-1].t
	u.busyUntil = max(u.busyUntil, last)
	if bought {
		u.pending = append(u.pending, last)
	}
	s.pushQueue(sess)
}

const msPerDay = 24 * 60 * 60 * 1000

// appendTS appends t (Unix ms) as RFC 3339 UTC with milliseconds:
// 2026-11-23T10:15:00.123Z.
func (s *Simulator) appendTS(b []byte, t int64) []byte {
	day := t / msPerDay
	if t%msPerDay < 0 {
		day--
	}
	if day != s.dayMs {
		s.dayMs = day
		time.UnixMilli(day*msPerDay).UTC().AppendFormat(s.dayStr[:0], "2006-01-02T")
	}
	b = append(b, s.dayStr[:]...)
	ms := t - day*msPerDay
	b = append2(b, ms/3_600_000)
	b = append(b, ':')
	b = append2(b, ms/60_000%60)
	b = append(b, ':')
	b = append2(b, ms/1000%60)
	b = append(b, '.')
	f := ms % 1000
	b = append(b, byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10), 'Z')
	return b
}

func append2(b []byte, v int64) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

// The queue is a binary min-heap of sessions ordered by the time of their
// next event, ties broken by session number, so emission order is fully
// determined.
func (s *Simulator) less(i, j int) bool {
	a, b := &s.queue[i], &s.queue[j]
	return a.t < b.t || a.t == b.t && a.num < b.num
}

func (s *Simulator) pushQueue(sess *session) {
	s.queue = append(s.queue, qentry{t: sess.events[0].t, num: sess.num, si: sess.si})
	i := len(s.queue) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s.queue[i], s.queue[p] = s.queue[p], s.queue[i]
		i = p
	}
}

func (s *Simulator) popQueue() {
	n := len(s.queue) - 1
	s.queue[0] = s.queue[n]
	s.queue[n] = qentry{}
	s.queue = s.queue[:n]
	if n > 0 {
		s.down(0)
	}
}

func (s *Simulator) down(i int) {
	n := len(s.queue)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			return
		}
		s.queue[i], s.queue[m] = s.queue[m], s.queue[i]
		i = m
	}
}
