package window_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// The calls a partition's processor makes: Update on every event, Vector
// on triggers, Changes at the end of each transaction.
func Example() {
	defs, err := window.Parse([]byte(`
features:
  - name: cart_adds_5m
    entity: session
    events: [add_to_cart]
    aggregation: count
    window: {kind: tumbling, size: 5m}
  - name: max_price
    entity: user
    events: [add_to_cart]
    value: price
    aggregation: max
`))
	if err != nil {
		panic(err)
	}
	eng, err := window.New(window.Config{Definitions: defs, AllowedLateness: 30 * time.Second}, nil, nil)
	if err != nil {
		panic(err)
	}
	eng.OnClose(func(r window.Result) {
		fmt.Printf("closed %s %s [%d, %d): %v\n", r.Name, r.Key, r.Start/60000, r.End/60000, r.Value)
	})
	vec := make([]float64, eng.Len())
	add := func(minute float64, price float64) {
		e := schemas.NewEvent()
		e.EventID, e.Type, e.UserID, e.SessionID = "e", schemas.AddToCart, "u1", "s1"
		e.ProductID, e.Price, e.Quantity = "p", price, 1
		e.TimeMillis = int64(minute * 60000)
		if err := eng.Update(&e); errors.Is(err, window.ErrLate) {
			fmt.Printf("minute %v: late (DLQ reason late)\n", minute)
			return
		}
		eng.Vector(&e, vec)
		fmt.Printf("minute %v: %v\n", minute, vec)
	}
	add(1, 10)
	add(4, 30)
	add(3.8, 20) // out of order, within the lateness: lands in [0, 5)
	add(6, 5)
	add(4.2, 99) // older than the watermark (6 min - 30 s): late
	eng.Changes(func(ent window.Entity, key string, deleted bool) {
		rec, _ := eng.AppendState(ent, key, nil)
		fmt.Printf("changelog %s/%s: %d bytes\n", ent, key, len(rec))
	})
	// Output:
	// minute 1: [1 10]
	// minute 4: [2 30]
	// minute 3.8: [3 30]
	// closed cart_adds_5m s1 [0, 5): 3
	// minute 6: [1 30]
	// minute 4.2: late (DLQ reason late)
	// changelog user/u1: 27 bytes
	// changelog session/s1: 27 bytes
}
