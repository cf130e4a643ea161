package schemas

import (
	"fmt"
	"testing"
)

func TestScratch(t *testing.T) {
	var d Decoder
	for _, in := range []string{
		`{"event_id":"a"`, `{"event_id":"a",}`, `{"event_id" "a"}`, `{"price":01}`, `{"event_id":"a"} x`, `{"price":"3"}`, `{"quantity":1.0}`, `{"quantity":99999999999999999999}`, `{"price":1e400}`, `{"price":-1e400}`,
		`{"event_id":"e","type":"add_to_cart","ts":"2026-11-23T10:00:00+05:30","user_id":"u","session_id":"s","product_id":"p","price":-3,"quantity":1}`,
		`{"event_id":"","type":"add_to_cart"}`, `{"event_id":"x","type":""}`, `{"event_id":"x","type":"purchase","ts":"2026-11-23T10:00:00Z","user_id":"u","session_id":"s","order_id":"o","amount":3,"currency":"EUR"}`,
		`nul`, `tru`, `[`, `{"a":tru}`, `{"event_id":"x\"y"}`,
	} {
		var e Event
		err := d.Decode(TopicCart, []byte(in), &e)
		fmt.Printf("%-50s %v\n", in, err)
	}
	e := NewEvent()
	e.EventID, e.Type, e.TS, e.UserID, e.SessionID = "e1", AddToCart, "2026-11-23T10:00:00.123Z", "u1", "s1"
	e.ProductID, e.Price, e.Quantity, e.Device = "p1", 19.99, 2, "mob\"ile"
	b := e.AppendJSON(nil)
	fmt.Println(string(b))
	buf := make([]byte, 0, 1024)
	fmt.Println("append allocs", testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }))
	var out Event
	fmt.Println("decode allocs", testing.AllocsPerRun(100, func() {
		if err := d.Decode(TopicCart, b, &out); err != nil { panic(err) }
	}), out)
}
