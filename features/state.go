package features

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/driftline/driftline/schemas"
)

// The catalog of features the first-cut stage computes. A Spec picks and
// orders a subset by name. Issue 3 replaces this fixed catalog with feature
// definitions as data.
const (
	fSessionEvents = iota
	fSessionProductViews
	fSessionSearches
	fSessionCartAdds
	fSessionCartRemoves
	fSessionCartValue
	fSessionMeanViewedPrice
	fSessionMinutes
	fIsCheckout
	fUserSessions
	fUserPurchases
	fHoursSinceLastPurchase
	fDeviceMobile
	fReferrerAds
	fReferrerEmail
	numCatalog
)

var catalogNames = [numCatalog]string{
	"session_events", "session_product_views", "session_searches",
	"session_cart_adds", "session_cart_removes", "session_cart_value",
	"session_mean_viewed_price", "session_minutes", "is_checkout",
	"user_sessions", "user_purchases", "hours_since_last_purchase",
	"device_mobile", "referrer_ads", "referrer_email",
}

// neverPurchasedHours is hours_since_last_purchase for a user with none.
const neverPurchasedHours = 720

// Catalog returns the names of every feature the stage can compute.
func Catalog() []string { return slices.Clone(catalogNames[:]) }

func catalogIndex(name string) int { return slices.Index(catalogNames[:], name) }

// session is the state of one storefront session.
type session struct {
	id             string            // the sessions map's key
	userID         string            // the users map's key
	segments       *schemas.Segments // interned: few distinct triples
	firstMillis    int64
	lastMillis     int64
	events         int
	productViews   int
	searches       int
	cartAdds       int
	cartRemoves    int
	cartValue      float64
	viewedPriceSum float64
	purchases      []int64 // event times of the session's purchases, latest maxSessionPurchases
	pending        []*pendingLabel
}

const maxSessionPurchases = 8

// purchasedWithin returns the time of a purchase of the session within
// [from, to], if there is one.
func (s *session) purchasedWithin(from, to int64) (int64, bool) {
	for _, t := range s.purchases {
		if t >= from && t <= to {
			return t, true
		}
	}
	return 0, false
}

// user is the lifetime state of one user.
//
// Purchases are kept as times, not only a count: the three input topics are
// consumed concurrently, so a purchase can be processed before a cart event
// that precedes it in event time. Counting it would leak the label into the
// vector; purchasesBefore counts only purchases at or before the event.
type user struct {
	id          string // the users map's key
	sessions    int
	lastSession string
	// recent holds the latest purchase times (at most recentPurchases);
	// older purchases are folded into olderCount and olderLastMs.
	recent      []int64
	olderCount  int
	olderLastMs int64
}

const recentPurchases = 8

func (u *user) addPurchase(ms int64) {
	if len(u.recent) == recentPurchases {
		u.olderCount++
		u.olderLastMs = max(u.olderLastMs, u.recent[0])
		u.recent = append(u.recent[:0], u.recent[1:]...)
	}
	u.recent = append(u.recent, ms)
}

// purchasesBefore returns how many purchases the user made at or before ms
// and the time of the latest of them (0 if none).
func (u *user) purchasesBefore(ms int64) (n int, lastMs int64) {
	n, lastMs = u.olderCount, u.olderLastMs
	for _, t := range u.recent {
		if t <= ms {
			n++
			lastMs = max(lastMs, t)
		}
	}
	return n, lastMs
}

// pendingLabel is a vector waiting for its outcome. It keeps only what
// its session does not: the label record is built when the outcome is known.
type pendingLabel struct {
	sess     *session
	eventID  string
	values   []float64
	atMs     int64 // event time of the scored event
	score    float64
	version  int32
	resolved bool
}

// pendingQueue is a min-heap of pending labels by event time, so one
// far-future event never holds back the expiry of the others. Entries
// labelled positive stay until their horizon passes (lazy deletion).
type pendingQueue []*pendingLabel

func (q pendingQueue) Len() int           { return len(q) }
func (q pendingQueue) Less(i, j int) bool { return q[i].atMs < q[j].atMs }
func (q pendingQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *pendingQueue) Push(x any)        { *q = append(*q, x.(*pendingLabel)) }
func (q *pendingQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return x
}

// numInputs is the number of input topics: clickstream, cart, transactions.
const numInputs = 3

// inputClock is what the stage knows of one input topic on one partition.
type inputClock struct {
	maxTS    int64     // newest event time read; 0 none
	lastRead time.Time // wall time of the last record read
}

// partState is everything the stage keeps for one partition number of the
// co-partitioned input topics.
type partState struct {
	segments map[schemas.Segments]*schemas.Segments // interned segment triples
	sessions map[string]*session
	users    map[string]*user
	queue    pendingQueue
	clocks   [numInputs]inputClock
	created  time.Time
	swept    int64 // watermark at the last session sweep
}

func newPartState(now time.Time) *partState {
	return &partState{
		segments: map[schemas.Segments]*schemas.Segments{},
		sessions: map[string]*session{},
		users:    map[string]*user{},
		created:  now,
	}
}

// observe records an event time read from input topic i.
func (p *partState) observe(i int, ms int64, now time.Time) {
	c := &p.clocks[i]
	c.maxTS = max(c.maxTS, ms)
	c.lastRead = now
}

// watermark is the event time up to which the partition has seen every
// input, minus lateness: the minimum over the input topics of their newest
// event time. A topic not heard from for idle (wall time) stops holding it
// back; one never heard from holds it at 0 until it has been idle that long.
// When every input is idle, all that was sent has been read and the newest
// event time counts.
func (p *partState) watermark(now time.Time, latenessMs int64, idle time.Duration) int64 {
	wm, newest, active := int64(math.MaxInt64), int64(0), false
	for _, c := range p.clocks {
		newest = max(newest, c.maxTS)
		last := c.lastRead
		if last.IsZero() {
			last = p.created
		}
		if now.Sub(last) > idle {
			continue
		}
		active = true
		wm = min(wm, c.maxTS)
	}
	if !active {
		wm = newest
	}
	if wm <= 0 {
		return 0
	}
	return wm - latenessMs
}

// intern returns the shared copy of a segment triple, cloning its strings
// (which may point into a record) the first time it is seen.
func (p *partState) intern(seg schemas.Segments) *schemas.Segments {
	if s, ok := p.segments[seg]; ok {
		return s
	}
	s := &schemas.Segments{Device: strings.Clone(seg.Device), Country: strings.Clone(seg.Country), Referrer: strings.Clone(seg.Referrer)}
	p.segments[*s] = s
	return s
}

// apply folds an event into session and user state and returns the session.
func (p *partState) apply(e *schemas.Event) *session {
	s := p.sessions[e.SessionID]
	u := p.users[e.UserID]
	if u == nil {
		u = &user{id: strings.Clone(e.UserID)}
		p.users[u.id] = u
	}
	if s == nil {
		s = &session{
			id:          strings.Clone(e.SessionID),
			userID:      u.id,
			firstMillis: e.TimeMillis,
			segments:    p.intern(schemas.Segments{Device: e.Device, Country: e.Country, Referrer: e.Referrer}),
		}
		p.sessions[s.id] = s
		if u.lastSession != s.id {
			u.sessions++
			u.lastSession = s.id
		}
	}
	if schemas.TopicOf(e.Type) != schemas.TopicTransactions {
		s.events++ // outcomes must not feed the vector they label
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
		if len(s.purchases) == maxSessionPurchases {
			s.purchases = slices.Delete(s.purchases, 0, 1)
		}
		s.purchases = append(s.purchases, e.TimeMillis)
		u.addPurchase(e.TimeMillis)
	}
	return s
}

// compute writes the catalog values for an event of a session into out
// (length numCatalog). The event's own contribution is already applied.
func (p *partState) compute(e *schemas.Event, s *session, out *[numCatalog]float64) {
	u := p.users[e.UserID]
	out[fSessionEvents] = float64(s.events)
	out[fSessionProductViews] = float64(s.productViews)
	out[fSessionSearches] = float64(s.searches)
	out[fSessionCartAdds] = float64(s.cartAdds)
	out[fSessionCartRemoves] = float64(s.cartRemoves)
	out[fSessionCartValue] = s.cartValue
	out[fSessionMeanViewedPrice] = 0
	if s.productViews > 0 {
		out[fSessionMeanViewedPrice] = s.viewedPriceSum / float64(s.productViews)
	}
	out[fSessionMinutes] = float64(e.TimeMillis-s.firstMillis) / 60000
	out[fIsCheckout] = b2f(e.Type == schemas.CheckoutStart)
	out[fUserSessions] = float64(u.sessions)
	n, last := u.purchasesBefore(e.TimeMillis)
	out[fUserPurchases] = float64(n)
	out[fHoursSinceLastPurchase] = neverPurchasedHours
	if last > 0 {
		out[fHoursSinceLastPurchase] = min(neverPurchasedHours, float64(e.TimeMillis-last)/3.6e6)
	}
	out[fDeviceMobile] = b2f(s.segments.Device == "mobile")
	out[fReferrerAds] = b2f(s.segments.Referrer == "ads")
	out[fReferrerEmail] = b2f(s.segments.Referrer == "email")
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
