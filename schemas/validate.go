package schemas

import (
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Length limits of the storefront contract, counted in Unicode characters
// (code points, as JSON Schema's maxLength counts), not bytes.
const (
	// MaxIDLength bounds event_id, user_id, session_id (each 1-128
	// characters) and, when present, product_id and order_id.
	MaxIDLength = 128

	// MaxTextLength bounds the optional free-text fields: device, country,
	// referrer, page, query, category. The design does not bound them; 256
	// is our decision: device, country and referrer become monitoring
	// segments and page/query/category are short paths and search terms, so
	// anything longer is a producer bug rather than data worth keeping.
	MaxTextLength = 256
)

// explicit marks fields that the JSON record carried with a value that looks
// like the field's "missing" sentinel: an explicit "" for a required string,
// an explicit -1 for an integer. Only the Decoder can see the difference;
// an Event built in Go has no such marks and its sentinels mean "absent".
type explicit uint8

const (
	explicitEventID explicit = 1 << iota
	explicitType
	explicitTS
	explicitUserID
	explicitSessionID
	explicitSchemaVersion
	explicitQuantity
	explicitItems
)

// Validate checks e against every rule of the storefront contract and sets
// e.TimeMillis from e.TS. It returns a *ValidationError naming the first
// field that breaks a rule, checked in a fixed order: schema_version first
// (a record of a newer major version is not judged by this build's rules),
// then the common fields, then the fields of the event's type.
//
// Absent fields are the sentinels of Reset: "" for strings, NaN for prices
// and amounts, -1 for integers. An absent schema_version means 1. Optional
// strings that are "" are absent, so an empty device is simply no device.
// A price, amount or cart_value that is present must be finite and >= 0 on
// every event type, a quantity >= 1 and items >= 0 (both at most
// MaxSafeInteger), even where the type does not need them. Validate does
// not check UTF-8; the Decoder rejects records that are not valid UTF-8
// before they get here.
//
// Validate allocates only when it rejects.
func (e *Event) Validate() error {
	if err := e.validate(0); err != nil {
		return err
	}
	return nil
}

// validate is Validate with the Decoder's knowledge of explicit sentinels.
// It returns the concrete type so the hot path never boxes a nil pointer.
func (e *Event) validate(x explicit) *ValidationError {
	// schema_version: absent means 1.
	switch v := e.SchemaVersion; {
	case x&explicitSchemaVersion != 0:
		return invalid("schema_version", "must be >= 1, got -1")
	case v == -1:
	case v < 1:
		return invalid("schema_version", "must be >= 1, got "+strconv.Itoa(v))
	case v > CurrentSchemaVersion:
		return invalid("schema_version", "unsupported major version "+strconv.Itoa(v)+
			" (this build reads "+strconv.Itoa(CurrentSchemaVersion)+")")
	}

	if err := checkID("event_id", e.EventID, x&explicitEventID != 0); err != nil {
		return err
	}

	switch {
	case e.Type == "" && x&explicitType == 0:
		return invalid("type", "required")
	case TopicOf(e.Type) == "":
		return invalid("type", "unknown event type "+quote(e.Type))
	}

	if e.TS == "" && x&explicitTS == 0 {
		return invalid("ts", "required")
	}
	ms, ok := parseRFC3339Millis(e.TS)
	if !ok {
		return invalid("ts", "must be RFC 3339 with offset, got "+quote(e.TS))
	}
	e.TimeMillis = ms

	if err := checkID("user_id", e.UserID, x&explicitUserID != 0); err != nil {
		return err
	}
	if err := checkID("session_id", e.SessionID, x&explicitSessionID != 0); err != nil {
		return err
	}

	for _, f := range [...]struct {
		name, v string
	}{
		{"device", e.Device}, {"country", e.Country}, {"referrer", e.Referrer},
		{"page", e.Page}, {"query", e.Query}, {"category", e.Category},
	} {
		if err := checkMaxLen(f.name, f.v, MaxTextLength); err != nil {
			return err
		}
	}

	// What each type needs, from the contract table.
	var product, quantity, checkout, money bool
	switch e.Type {
	case ProductView:
		product = true
	case AddToCart, RemoveFromCart:
		product, quantity = true, true
	case CheckoutStart:
		checkout = true
	case Purchase, Refund, Chargeback:
		money = true
	}

	if e.ProductID == "" && product {
		return e.required("product_id")
	}
	if err := checkMaxLen("product_id", e.ProductID, MaxIDLength); err != nil {
		return err
	}
	if err := e.checkAmount("price", e.Price, product); err != nil {
		return err
	}
	switch q := e.Quantity; {
	case x&explicitQuantity != 0:
		return invalid("quantity", "must be >= 1, got -1")
	case q == -1 && quantity:
		return e.required("quantity")
	case q != -1 && q < 1:
		return invalid("quantity", "must be >= 1, got "+strconv.Itoa(q))
	case q > MaxSafeInteger:
		return invalid("quantity", "integer out of range")
	}

	if err := e.checkAmount("cart_value", e.CartValue, checkout); err != nil {
		return err
	}
	switch n := e.Items; {
	case x&explicitItems != 0:
		return invalid("items", "must be >= 0, got -1")
	case n == -1 && checkout:
		return e.required("items")
	case n < -1:
		return invalid("items", "must be >= 0, got "+strconv.Itoa(n))
	case n > MaxSafeInteger:
		return invalid("items", "integer out of range")
	}

	if e.OrderID == "" && money {
		return e.required("order_id")
	}
	if err := checkMaxLen("order_id", e.OrderID, MaxIDLength); err != nil {
		return err
	}
	if err := e.checkAmount("amount", e.Amount, money); err != nil {
		return err
	}
	if e.Currency == "" && money {
		return e.required("currency")
	}
	if e.Currency != "" && !isCurrencyCode(e.Currency) {
		return invalid("currency", "must be an ISO 4217 code (3 uppercase letters), got "+quote(e.Currency))
	}
	return nil
}

func (e *Event) required(field string) *ValidationError {
	return invalid(field, "required for "+e.Type)
}

// checkAmount checks a price, cart value or amount: NaN is absent.
func (e *Event) checkAmount(field string, v float64, required bool) *ValidationError {
	switch {
	case math.IsNaN(v):
		if required {
			return e.required(field)
		}
	case math.IsInf(v, 0):
		return invalid(field, "must be a finite number")
	case v < 0:
		return invalid(field, "must be >= 0, got "+strconv.FormatFloat(v, 'g', -1, 64))
	}
	return nil
}

// checkID checks a required identifier: 1-128 characters. An id that is ""
// but was not explicitly sent is missing rather than empty.
func checkID(field, v string, explicitEmpty bool) *ValidationError {
	if v == "" && !explicitEmpty {
		return invalid(field, "required")
	}
	if v == "" || (len(v) > MaxIDLength && utf8.RuneCountInString(v) > MaxIDLength) {
		return invalid(field, "length must be 1-"+strconv.Itoa(MaxIDLength)+
			", got "+strconv.Itoa(utf8.RuneCountInString(v)))
	}
	return nil
}

// checkMaxLen checks an optional string; "" is absent and always fine.
func checkMaxLen(field, v string, max int) *ValidationError {
	// A string of at most max bytes has at most max characters: only long
	// strings pay for counting.
	if len(v) > max && utf8.RuneCountInString(v) > max {
		return invalid(field, "length must be at most "+strconv.Itoa(max)+
			", got "+strconv.Itoa(utf8.RuneCountInString(v)))
	}
	return nil
}

// isCurrencyCode reports whether s has the shape of an ISO 4217 alphabetic
// code: exactly three ASCII upper-case letters. Whether the code is assigned
// (EUR yes, XYZ no) is not checked: the list changes, the shape does not.
func isCurrencyCode(s string) bool {
	return len(s) == 3 && isUpper(s[0]) && isUpper(s[1]) && isUpper(s[2])
}

func isUpper(c byte) bool { return 'A' <= c && c <= 'Z' }

// quote quotes a value for a reason, cut to 64 bytes so a hostile 60 KiB
// string does not end up in a Kafka header.
func quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "..."
}

// parseRFC3339Millis parses an RFC 3339 date-time with a mandatory offset,
// YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM), and returns it as Unix
// milliseconds (fraction digits beyond milliseconds are truncated).
//
// It is stricter than RFC 3339 in two documented ways, both shared with Go's
// time.RFC3339 and with the pattern in the JSON Schema files: "T" and "Z"
// must be upper case, and a leap second (:60) is rejected. It does not
// allocate; time.Parse(time.RFC3339Nano, ...) builds a time.FixedZone (3
// allocations) for offsets that are not whole hours, such as India's +05:30.
func parseRFC3339Millis(s string) (int64, bool) {
	if len(s) < len("2006-01-02T15:04:05Z") ||
		s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	y1, ok1 := digits2(s, 0)
	y2, ok2 := digits2(s, 2)
	mo, ok3 := digits2(s, 5)
	d, ok4 := digits2(s, 8)
	h, ok5 := digits2(s, 11)
	mi, ok6 := digits2(s, 14)
	sec, ok7 := digits2(s, 17)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7) {
		return 0, false
	}
	year := y1*100 + y2
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(mo, year) || h > 23 || mi > 59 || sec > 59 {
		return 0, false
	}

	rest := s[19:]
	nanos := 0
	if rest != "" && rest[0] == '.' {
		i := 1
		for ; i < len(rest) && '0' <= rest[i] && rest[i] <= '9'; i++ {
			if i <= 9 {
				nanos = nanos*10 + int(rest[i]-'0')
			}
		}
		if i == 1 {
			return 0, false // "." without digits
		}
		for n := i; n <= 9; n++ {
			nanos *= 10
		}
		rest = rest[i:]
	}

	offset := 0 // seconds east of UTC
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := digits2(rest, 1)
		om, ok2 := digits2(rest, 4)
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return 0, false
	}

	t := time.Date(year, time.Month(mo), d, h, mi, sec, nanos, time.UTC)
	return t.UnixMilli() - int64(offset)*1000, true
}

// digits2 reads two ASCII digits at s[i:i+2].
func digits2(s string, i int) (int, bool) {
	a, b := s[i], s[i+1]
	if a < '0' || a > '9' || b < '0' || b > '9' {
		return 0, false
	}
	return int(a-'0')*10 + int(b-'0'), true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
