package storefront

import (
	"math"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

func TestOracle(t *testing.T) {
	cfg := Config{Seed: 7}
	s, _ := New(cfg)
	type sess struct {
		views      int
		cv         float64
		desk, mail bool
		up         int
		buy        bool
		cart       bool
	}
	users := map[string]int{}
	ss := map[string]*sess{}
	var order []string
	s.Advance(s.Now().Add(300*time.Minute), func(e *schemas.Event) {
		x := ss[e.SessionID]
		if x == nil {
			x = &sess{desk: e.Device == "desktop", mail: e.Referrer == "email", up: users[e.UserID]}
			ss[e.SessionID] = x
			order = append(order, e.SessionID)
		}
		switch e.Type {
		case schemas.ProductView:
			x.views++
		case schemas.AddToCart:
			x.cart = true
			x.cv += e.Price * float64(e.Quantity)
		case schemas.RemoveFromCart:
			x.cv -= e.Price * float64(e.Quantity)
		case schemas.Purchase:
			x.buy = true
			users[e.UserID]++
		}
	})
	var rows []row
	for _, id := range order {
		x := ss[id]
		if !x.cart {
			continue
		}
		l := 0.35*float64(min(x.views, 8)) - 0.9*math.Log1p(x.cv/50) + 0.7*b2f(x.desk) + 0.9*b2f(x.mail) + 0.5*float64(min(x.up, 3))
		rows = append(rows, row{x: []float64{l}, label: b2f(x.buy)})
	}
	m := &logReg{mean: []float64{0}, sd: []float64{1}, w: []float64{0, 1}}
	t.Logf("oracle session AUC %.3f over %d carts", auc(m, rows), len(rows))
}
