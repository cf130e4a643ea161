package schemas

import (
	"math"
	"strconv"

	"github.com/segmentio/encoding/json"
)

// AppendJSON appends e as one storefront record (a JSON object, no trailing
// newline) to b and returns the extended buffer. It writes the required
// strings (event_id, type, ts, user_id, session_id) always and every other
// field only when present: optional strings when not "", numbers when not
// NaN, integers when not -1 (Reset's sentinels). TimeMillis is not written;
// ts is the event time on the wire.
//
// AppendJSON does not validate: call Validate first when e comes from
// somewhere untrusted. Infinite numbers, which JSON cannot represent and
// Validate rejects, are left out like NaN. Decoding the output gives e back.
//
// It allocates nothing when b has room for the record (a few hundred bytes
// for a typical event), so producers can reuse one buffer per record.
func (e *Event) AppendJSON(b []byte) []byte {
	b = append(b, `{"event_id":`...)
	b = json.AppendEscape(b, e.EventID, 0)
	b = appendString(b, `,"type":`, e.Type)
	b = appendString(b, `,"ts":`, e.TS)
	b = appendString(b, `,"user_id":`, e.UserID)
	b = appendString(b, `,"session_id":`, e.SessionID)
	b = appendInt(b, `,"schema_version":`, e.SchemaVersion)
	b = appendOptString(b, `,"device":`, e.Device)
	b = appendOptString(b, `,"country":`, e.Country)
	b = appendOptString(b, `,"referrer":`, e.Referrer)
	b = appendOptString(b, `,"page":`, e.Page)
	b = appendOptString(b, `,"query":`, e.Query)
	b = appendOptString(b, `,"category":`, e.Category)
	b = appendOptString(b, `,"product_id":`, e.ProductID)
	b = appendFloat(b, `,"price":`, e.Price)
	b = appendInt(b, `,"quantity":`, e.Quantity)
	b = appendFloat(b, `,"cart_value":`, e.CartValue)
	b = appendInt(b, `,"items":`, e.Items)
	b = appendOptString(b, `,"order_id":`, e.OrderID)
	b = appendFloat(b, `,"amount":`, e.Amount)
	b = appendOptString(b, `,"currency":`, e.Currency)
	return append(b, '}')
}

func appendString(b []byte, key, v string) []byte {
	return json.AppendEscape(append(b, key...), v, 0)
}

func appendOptString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendString(b, key, v)
}

func appendInt(b []byte, key string, v int) []byte {
	if v == -1 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(v), 10)
}

func appendFloat(b []byte, key string, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return b
	}
	return strconv.AppendFloat(append(b, key...), v, 'f', -1, 64)
}
