package schemas

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// sample returns a valid event of the given type, built the way a producer
// builds one: NewEvent, the common fields, then what the type needs.
func sample(eventType string) Event {
	e := NewEvent()
	e.EventID = "ev-" + eventType
	e.Type = eventType
	e.TS = "2026-11-23T10:15:00.123Z"
	e.UserID = "u-42"
	e.SessionID = "s-42-1"
	e.Device, e.Country, e.Referrer = "mobile", "DE", "google"
	switch eventType {
	case PageView:
		e.Page = "/"
	case Search:
		e.Query = "running shoes"
	case ProductView:
		e.ProductID, e.Price, e.Category = "sku-1", 89.9, "shoes"
	case AddToCart, RemoveFromCart:
		e.ProductID, e.Price, e.Quantity = "sku-1", 89.9, 1
	case CheckoutStart:
		e.CartValue, e.Items = 179.8, 2
	case Purchase, Refund, Chargeback:
		e.OrderID, e.Amount, e.Currency = "o-7", 179.8, "EUR"
	}
	return e
}

var allTypes = []string{PageView, ProductView, Search, AddToCart, RemoveFromCart, CheckoutStart, Purchase, Refund, Chargeback}

func TestValidateAcceptsASampleOfEveryType(t *testing.T) {
	for _, typ := range allTypes {
		e := sample(typ)
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", typ, err)
		}
		if e.TimeMillis != 1795428900123 {
			t.Errorf("%s: TimeMillis = %d, want 1795428900123", typ, e.TimeMillis)
		}
	}
}

func TestValidateRules(t *testing.T) {
	f := func(name, typ string, change func(e *Event), want string) {
		t.Helper()
		e := sample(typ)
		change(&e)
		err := e.Validate()
		got := "<accepted>"
		if err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%s (%s):\n got %s\nwant %s", name, typ, got, want)
		}
	}
	const ok = "<accepted>"
	long := func(n int) string { return strings.Repeat("x", n) }
	nop := func(e *Event) {}

	// event_id, user_id, session_id: 1-128 characters.
	f("event_id missing", PageView, func(e *Event) { e.EventID = "" }, "event_id: required")
	f("event_id 128 chars", PageView, func(e *Event) { e.EventID = long(128) }, ok)
	f("event_id 129 chars", PageView, func(e *Event) { e.EventID = long(129) }, "event_id: length must be 1-128, got 129")
	f("event_id counts characters, not bytes", PageView, func(e *Event) { e.EventID = strings.Repeat("ü", 128) }, ok)
	f("user_id missing", PageView, func(e *Event) { e.UserID = "" }, "user_id: required")
	f("user_id 129 chars", PageView, func(e *Event) { e.UserID = long(129) }, "user_id: length must be 1-128, got 129")
	f("session_id missing", PageView, func(e *Event) { e.SessionID = "" }, "session_id: required")
	f("session_id 300 chars", PageView, func(e *Event) { e.SessionID = long(300) }, "session_id: length must be 1-128, got 300")

	// type: one of the nine.
	f("type missing", PageView, func(e *Event) { e.Type = "" }, "type: required")
	f("type unknown", PageView, func(e *Event) { e.Type = "foo" }, `type: unknown event type "foo"`)
	f("type is case-sensitive", PageView, func(e *Event) { e.Type = "Page_View" }, `type: unknown event type "Page_View"`)
	f("a hostile type is cut in the reason", PageView, func(e *Event) { e.Type = long(1000) },
		`type: unknown event type "`+long(64)+`"...`)

	// ts: RFC 3339 with offset.
	for _, ts := range []string{
		"2026-11-23T10:15:00Z", "2026-11-23T10:15:00.1Z", "2026-11-23T10:15:00.123456789Z",
		"2026-11-23T10:15:00.1234567891234Z", "2026-11-23T11:15:00+01:00", "2026-11-23T05:15:00-05:00",
		"2026-11-23T10:15:00-00:00", "2028-02-29T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+23:59",
	} {
		f("ts "+ts, PageView, func(e *Event) { e.TS = ts }, ok)
	}
	for _, ts := range []string{
		"yesterday", "", "2026-11-23", "2026-11-23T10:15:00", "2026-11-23T10:15:00.123", "2026-11-23 10:15:00Z",
		"2026-11-23t10:15:00Z", "2026-11-23T10:15:00z", "2026-11-23T10:15Z", "2026-11-23T10:15:00.Z",
		"2026-11-23T10:15:00+0100", "2026-11-23T10:15:00+01", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
		"2026-11-31T00:00:00Z", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-11-23T24:00:00Z",
		"2026-11-23T10:60:00Z", "2026-12-31T23:59:60Z", "2026-11-23T10:15:00+24:00", "2026-11-23T10:15:00+01:60",
		"+2026-11-23T10:15:00Z", "2026-11-23T10:15:00Z ", "1795428900123",
	} {
		want := "ts: must be RFC 3339 with offset, got " + quote(ts)
		if ts == "" {
			want = "ts: required"
		}
		f("ts "+ts, PageView, func(e *Event) { e.TS = ts }, want)
	}

	// schema_version: absent means 1; only 1 is read.
	f("schema_version absent", PageView, func(e *Event) { e.SchemaVersion = -1 }, ok)
	f("schema_version 1", PageView, nop, ok)
	f("schema_version 2", PageView, func(e *Event) { e.SchemaVersion = 2 },
		"schema_version: unsupported major version 2 (this build reads 1)")
	f("schema_version 0", PageView, func(e *Event) { e.SchemaVersion = 0 }, "schema_version: must be >= 1, got 0")
	f("schema_version is judged first", PageView, func(e *Event) { e.SchemaVersion = 2; e.EventID = "" },
		"schema_version: unsupported major version 2 (this build reads 1)")

	// product_view, add_to_cart, remove_from_cart need product_id and price.
	for _, typ := range []string{ProductView, AddToCart, RemoveFromCart} {
		f("no product_id", typ, func(e *Event) { e.ProductID = "" }, "product_id: required for "+typ)
		f("no price", typ, func(e *Event) { e.Price = math.NaN() }, "price: required for "+typ)
		f("free", typ, func(e *Event) { e.Price = 0 }, ok)
		f("negative price", typ, func(e *Event) { e.Price = -3 }, "price: must be >= 0, got -3")
	}
	f("product_id 129 chars", AddToCart, func(e *Event) { e.ProductID = long(129) }, "product_id: length must be at most 128, got 129")
	f("price infinite", AddToCart, func(e *Event) { e.Price = math.Inf(1) }, "price: must be a finite number")
	f("price is checked wherever present", PageView, func(e *Event) { e.Price = -0.5 }, "price: must be >= 0, got -0.5")
	f("page_view needs no product", PageView, nop, ok)

	// add_to_cart, remove_from_cart need quantity >= 1.
	for _, typ := range []string{AddToCart, RemoveFromCart} {
		f("no quantity", typ, func(e *Event) { e.Quantity = -1 }, "quantity: required for "+typ)
		f("zero quantity", typ, func(e *Event) { e.Quantity = 0 }, "quantity: must be >= 1, got 0")
		f("many", typ, func(e *Event) { e.Quantity = 1000 }, ok)
	}
	f("quantity is checked wherever present", ProductView, func(e *Event) { e.Quantity = -5 }, "quantity: must be >= 1, got -5")
	f("product_view needs no quantity", ProductView, nop, ok)
	f("quantity 2^53-1", AddToCart, func(e *Event) { e.Quantity = MaxSafeInteger }, ok)
	f("quantity 2^53", AddToCart, func(e *Event) { e.Quantity = MaxSafeInteger + 1 }, "quantity: integer out of range")
	f("items 2^53", CheckoutStart, func(e *Event) { e.Items = MaxSafeInteger + 1 }, "items: integer out of range")

	// checkout_started needs cart_value >= 0 and items >= 0.
	f("no cart_value", CheckoutStart, func(e *Event) { e.CartValue = math.NaN() }, "cart_value: required for checkout_started")
	f("negative cart_value", CheckoutStart, func(e *Event) { e.CartValue = -1 }, "cart_value: must be >= 0, got -1")
	f("empty cart", CheckoutStart, func(e *Event) { e.CartValue, e.Items = 0, 0 }, ok)
	f("no items", CheckoutStart, func(e *Event) { e.Items = -1 }, "items: required for checkout_started")
	f("negative items", CheckoutStart, func(e *Event) { e.Items = -2 }, "items: must be >= 0, got -2")

	// purchase, refund, chargeback need order_id, amount >= 0, currency.
	for _, typ := range []string{Purchase, Refund, Chargeback} {
		f("no order_id", typ, func(e *Event) { e.OrderID = "" }, "order_id: required for "+typ)
		f("no amount", typ, func(e *Event) { e.Amount = math.NaN() }, "amount: required for "+typ)
		f("negative amount", typ, func(e *Event) { e.Amount = -10 }, "amount: must be >= 0, got -10")
		f("no currency", typ, func(e *Event) { e.Currency = "" }, "currency: required for "+typ)
	}
	for _, cur := range []string{"usd", "EURO", "EU", "E1R", "ÄUR", " EUR"} {
		f("currency "+cur, Purchase, func(e *Event) { e.Currency = cur },
			"currency: must be an ISO 4217 code (3 uppercase letters), got "+quote(cur))
	}
	f("currency XXX has the shape", Purchase, func(e *Event) { e.Currency = "XXX" }, ok)
	f("currency is checked wherever present", CheckoutStart, func(e *Event) { e.Currency = "eur" },
		`currency: must be an ISO 4217 code (3 uppercase letters), got "eur"`)
	f("order_id 129 chars", Refund, func(e *Event) { e.OrderID = long(129) }, "order_id: length must be at most 128, got 129")

	// Optional strings: absent when "", at most 256 characters.
	f("no segments", AddToCart, func(e *Event) { e.Device, e.Country, e.Referrer = "", "", "" }, ok)
	f("device 256 chars", AddToCart, func(e *Event) { e.Device = long(256) }, ok)
	f("device 257 chars", AddToCart, func(e *Event) { e.Device = long(257) }, "device: length must be at most 256, got 257")
	f("query 1000 chars", Search, func(e *Event) { e.Query = long(1000) }, "query: length must be at most 256, got 1000")
	f("page 257 chars", PageView, func(e *Event) { e.Page = long(257) }, "page: length must be at most 256, got 257")
}

func TestValidationErrorCarriesFieldAndReason(t *testing.T) {
	e := sample(AddToCart)
	e.Price = -3
	err := e.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("errors.Is(%v, ErrInvalid) = false", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "price" || ve.Reason != "must be >= 0, got -3" {
		t.Fatalf("errors.As: %#v", ve)
	}
	field, reason, ok := FieldReason(errors.Join(errors.New("cannot score"), err))
	if !ok || field != "price" || reason != "must be >= 0, got -3" {
		t.Fatalf("FieldReason = %q, %q, %v", field, reason, ok)
	}
	if _, _, ok := FieldReason(errors.New("broker down")); ok {
		t.Fatal("FieldReason of a non-validation error reports ok")
	}
}

func TestParseRFC3339MatchesTime(t *testing.T) {
	for _, ts := range []string{
		"2026-11-23T10:15:00Z", "2026-11-23T10:15:00.999999999Z", "2026-11-23T11:15:00.5+01:00",
		"1969-12-31T23:59:59.999Z", "1900-03-01T00:00:00-08:30", "2000-02-29T12:00:00+14:00",
	} {
		want, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseRFC3339Millis(ts)
		if !ok || got != want.UnixMilli() {
			t.Errorf("%s: got %d, %v; want %d", ts, got, ok, want.UnixMilli())
		}
	}
}

func TestValidateDoesNotAllocate(t *testing.T) {
	for _, typ := range allTypes {
		e := sample(typ)
		e.TS = "2026-11-23T15:45:00.123+05:30" // time.Parse would allocate a zone here
		if n := testing.AllocsPerRun(100, func() {
			if err := e.Validate(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per Validate, want 0", typ, n)
		}
	}
}
