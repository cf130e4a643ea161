package schemas

import (
	stdjson "encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// same compares events field by field, NaN equal to NaN.
func same(a, b Event) bool { return fmt.Sprintf("%#v", a) == fmt.Sprintf("%#v", b) }

func roundTrip(t *testing.T, e Event) {
	t.Helper()
	if err := e.Validate(); err != nil {
		t.Fatalf("sample is invalid: %v", err)
	}
	b := e.AppendJSON(nil)
	if !stdjson.Valid(b) {
		t.Fatalf("AppendJSON wrote invalid JSON: %s", b)
	}
	var d Decoder
	var got Event
	if err := d.Decode(TopicOf(e.Type), b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !same(got, e) {
		t.Fatalf("round trip changed the event:\n json %s\n  got %#v\n want %#v", b, got, e)
	}
}

func TestAppendJSONRoundTrips(t *testing.T) {
	for _, typ := range allTypes {
		t.Run(typ, func(t *testing.T) { roundTrip(t, sample(typ)) })
	}
	t.Run("awkward values", func(t *testing.T) {
		e := sample(AddToCart)
		e.EventID = "quote\" backslash\\ slash/ tab\t nl\n nul\x00 \u2028 <script>&"
		e.UserID = "ユーザー-42 😀"
		e.SchemaVersion = -1
		e.Price = 0.1 + 0.2
		e.Quantity = MaxSafeInteger
		e.CartValue = 5e-324
		e.Amount = 1e21
		e.Items = 0
		e.Currency = "XTS"
		roundTrip(t, e)
	})
}

func TestAppendJSONOmitsAbsentFields(t *testing.T) {
	e := NewEvent()
	e.EventID, e.Type, e.TS, e.UserID, e.SessionID = "e1", PageView, "2026-11-23T10:00:00Z", "u1", "s1"
	e.SchemaVersion = -1
	const want = `{"event_id":"e1","type":"page_view","ts":"2026-11-23T10:00:00Z","user_id":"u1","session_id":"s1"}`
	if got := string(e.AppendJSON(nil)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	e.Price = math.Inf(1) // not representable: left out rather than writing invalid JSON
	if got := string(e.AppendJSON(nil)); got != want {
		t.Fatalf("infinite price: %s", got)
	}
}

func TestAppendJSONRoundTripsRandomEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func(max int) string {
		var b strings.Builder
		for n := r.IntN(max + 1); n > 0; n-- {
			switch r.IntN(4) {
			case 0:
				b.WriteByte(byte(r.IntN(0x80))) // ASCII including control characters
			case 1:
				b.WriteRune(rune(0x80 + r.IntN(0x800)))
			case 2:
				b.WriteRune(rune(0x10000 + r.IntN(0x10000)))
			default:
				b.WriteString(`"\/`)
			}
		}
		return b.String()
	}
	id := func() string { return "id" + str(40) }
	num := func() float64 {
		if r.IntN(4) == 0 {
			return math.NaN()
		}
		return math.Abs(r.NormFloat64()) * math.Pow(10, float64(r.IntN(20)-10))
	}
	for i := range 2000 {
		e := sample(allTypes[i%len(allTypes)])
		e.EventID, e.UserID, e.SessionID = id(), id(), id()
		e.Device, e.Page, e.Query = str(20), str(60), str(60)
		if e.Price == e.Price {
			e.Price = num()
			if e.Price != e.Price {
				e.Price = 1
			}
		}
		if e.Type == PageView {
			e.CartValue, e.Amount = num(), num()
		}
		roundTrip(t, e)
	}
}

func TestAppendJSONDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 1024)
	for _, typ := range allTypes {
		e := sample(typ)
		if n := testing.AllocsPerRun(100, func() { buf = e.AppendJSON(buf[:0]) }); n != 0 {
			t.Errorf("%s: %v allocations per AppendJSON, want 0", typ, n)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := sample(AddToCart)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendJSON(buf[:0])
	}
	b.SetBytes(int64(len(buf)))
}
