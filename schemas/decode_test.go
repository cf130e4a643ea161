package schemas

import (
	stdjson "encoding/json"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/segmentio/encoding/json"
)

// cartRecord is a typical add_to_cart record as a storefront sends it.
const cartRecord = `{"event_id":"7f0c2a4e-9f1b-4c55-a1d2-0b9e3c8d1f20","type":"add_to_cart",` +
	`"ts":"2026-11-23T10:15:00.123Z","user_id":"u-000042","session_id":"s-000042-0003","schema_version":1,` +
	`"device":"mobile","country":"DE","referrer":"google","page":"/p/sku-1234","category":"shoes",` +
	`"product_id":"sku-1234","price":89.9,"quantity":1}`

// rec builds a record from a valid sample of typ, with JSON members
// replaced ("price":-3), added, or removed ("-price").
func rec(typ string, members ...string) string {
	e := sample(typ)
	var m map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(e.AppendJSON(nil), &m); err != nil {
		panic(err)
	}
	for _, kv := range members {
		if name, ok := strings.CutPrefix(kv, "-"); ok {
			delete(m, name)
			continue
		}
		var one map[string]stdjson.RawMessage
		if err := stdjson.Unmarshal([]byte("{"+kv+"}"), &one); err != nil {
			panic(kv + ": " + err.Error())
		}
		for k, v := range one {
			m[k] = v
		}
	}
	b, err := stdjson.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestDecode(t *testing.T) {
	const ok = "<accepted>"
	f := func(name, topic, record, want string) {
		t.Helper()
		var d Decoder
		var e Event
		got := ok
		if err := d.Decode(topic, []byte(record), &e); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("%s:\nrecord %.200s\n   got %s\n  want %s", name, record, got, want)
		}
	}
	cart, click, tx := TopicCart, TopicClickstream, TopicTransactions

	f("a typical add_to_cart", cart, cartRecord, ok)
	for _, typ := range allTypes {
		f("a sample "+typ, TopicOf(typ), rec(typ), ok)
	}

	// Producers may add fields; keys match exactly; null is absent.
	f("unknown fields are ignored", cart, rec(AddToCart, `"experiment":{"arm":"b","ids":[1,2,null]}`, `"tags":[]`), ok)
	f("keys are case-sensitive", cart, rec(AddToCart, "-price", `"Price":3`), "price: required for add_to_cart")
	f("null is absent (optional)", click, rec(PageView, `"device":null`, `"price":null`, `"quantity":null`), ok)
	f("null is absent (required)", cart, rec(AddToCart, `"quantity":null`), "quantity: required for add_to_cart")
	f("null schema_version is 1", click, rec(PageView, `"schema_version":null`), ok)
	f("escapes are decoded", click, rec(PageView, `"page":"/s\u00e4le?q=\"x\""`), ok)
	f("whitespace around the object", click, " \n\t"+rec(PageView)+"\r\n", ok)

	// Missing versus empty.
	f("event_id absent", click, rec(PageView, "-event_id"), "event_id: required")
	f("event_id empty", click, rec(PageView, `"event_id":""`), "event_id: length must be 1-128, got 0")
	f("user_id 129 chars", click, rec(PageView, `"user_id":"`+strings.Repeat("u", 129)+`"`), "user_id: length must be 1-128, got 129")
	f("type absent", click, rec(PageView, "-type"), "type: required")
	f("type empty", click, rec(PageView, `"type":""`), `type: unknown event type ""`)
	f("ts absent", click, rec(PageView, "-ts"), "ts: required")
	f("ts empty", click, rec(PageView, `"ts":""`), `ts: must be RFC 3339 with offset, got ""`)
	f("ts without offset", click, rec(PageView, `"ts":"2026-11-23T10:15:00"`), `ts: must be RFC 3339 with offset, got "2026-11-23T10:15:00"`)
	f("schema_version absent", click, rec(PageView, "-schema_version"), ok)
	f("schema_version -1", click, rec(PageView, `"schema_version":-1`), "schema_version: must be >= 1, got -1")
	f("schema_version 2", click, rec(PageView, `"schema_version":2`), "schema_version: unsupported major version 2 (this build reads 1)")
	f("quantity -1", cart, rec(AddToCart, `"quantity":-1`), "quantity: must be >= 1, got -1")
	f("quantity -1 where not needed", click, rec(PageView, `"quantity":-1`), "quantity: must be >= 1, got -1")
	f("items -1", cart, rec(CheckoutStart, `"items":-1`), "items: must be >= 0, got -1")

	// Wrong JSON types name the field.
	f("price as string", cart, rec(AddToCart, `"price":"3"`), "price: must be a number")
	f("price as bool", cart, rec(AddToCart, `"price":true`), "price: must be a number")
	f("quantity with fraction", cart, rec(AddToCart, `"quantity":1.5`), "quantity: must be an integer")
	f("quantity spelled 2.0 is 2", cart, rec(AddToCart, `"quantity":2.0`), ok)
	f("quantity spelled 2e0 is 2", cart, rec(AddToCart, `"quantity":2e0`), ok)
	f("quantity spelled 0.0 is 0", cart, rec(AddToCart, `"quantity":0.0`), "quantity: must be >= 1, got 0")
	f("quantity 2^53-1", cart, rec(AddToCart, `"quantity":9007199254740991`), ok)
	f("quantity 2^53", cart, rec(AddToCart, `"quantity":9007199254740992`), "quantity: integer out of range")
	f("items 1e400", cart, rec(CheckoutStart, `"items":1e400`), "items: integer out of range")
	f("items as string", cart, rec(CheckoutStart, `"items":"2"`), "items: must be an integer")
	f("items as object", cart, rec(CheckoutStart, `"items":{}`), "items: must be an integer")
	f("schema_version as string", cart, rec(AddToCart, `"schema_version":"1"`), "schema_version: must be an integer")
	f("event_id as number", cart, rec(AddToCart, `"event_id":3`), "event_id: must be a string")
	f("device as array", cart, rec(AddToCart, `"device":["ios"]`), "device: must be a string")
	f("quantity too large", cart, rec(AddToCart, `"quantity":99999999999999999999`), "quantity: integer out of range")
	f("price too large", cart, rec(AddToCart, `"price":1e400`), "price: number out of range")

	// Not JSON, or not one object.
	f("empty", cart, "", "record: invalid JSON: empty record")
	f("blank", cart, "  \n", "record: invalid JSON: empty record")
	f("truncated in a string", cart, cartRecord[:60], "record: invalid JSON: missing '\"' at the end of a string value: \"a")
	f("truncated after a value", cart, cartRecord[:len(cartRecord)-1], "record: invalid JSON: unexpected end of JSON input after object field value")
	f("trailing garbage", cart, cartRecord+" x", "record: invalid JSON: unexpected data after the object at byte 317")
	f("two objects", cart, cartRecord+cartRecord, "record: invalid JSON: unexpected data after the object at byte 316")
	f("array", cart, "["+cartRecord+"]", "record: must be a JSON object, got an array")
	f("string", cart, `"add_to_cart"`, "record: must be a JSON object, got a string")
	f("null", cart, "null", "record: must be a JSON object, got null")
	f("number", cart, "42", "record: must be a JSON object, got a number")
	f("not JSON at all", cart, "add_to_cart,u-1,9.99", "record: invalid JSON: invalid character 'a' looking for beginning of value: add_to_cart,u-1,9.99")
	f("single quotes", cart, `{'event_id':'e'}`, "record: invalid JSON: expected '\"' at the beginning of a string value: 'event_id':'e'}")
	f("not UTF-8", cart, strings.Replace(cartRecord, "mobile", "mob\xffle", 1), "record: not valid UTF-8 at byte 186")

	// Wrong topic.
	f("purchase on the cart topic", cart, rec(Purchase), `type: "purchase" belongs on storefront.transactions, not storefront.cart`)
	f("add_to_cart on clickstream", click, cartRecord, `type: "add_to_cart" belongs on storefront.cart, not storefront.clickstream`)
	f("page_view on transactions", tx, rec(PageView), `type: "page_view" belongs on storefront.clickstream, not storefront.transactions`)
	f("no topic check off the input topics", "replay", rec(Purchase), ok)
	f("rules before topic", cart, rec(Purchase, `"amount":-1`), "amount: must be >= 0, got -1")
}

func TestDecodeSizeLimit(t *testing.T) {
	pad := func(record string, size int) []byte {
		// An unknown field pads the record to exactly size bytes.
		p := `,"pad":""}`
		return []byte(record[:len(record)-1] + p[:len(p)-2] + strings.Repeat(" ", size-len(record)-len(p)+1) + `"}`)
	}
	var d Decoder
	var e Event
	if b := pad(cartRecord, DefaultMaxBytes); len(b) != 65536 || d.Decode(TopicCart, b, &e) != nil {
		t.Fatalf("a record of exactly 64 KiB (%d bytes): %v", len(b), d.Decode(TopicCart, b, &e))
	}
	err := d.Decode(TopicCart, pad(cartRecord, 70000), &e)
	if err == nil || err.Error() != "record: 70000 bytes exceeds limit 65536" {
		t.Fatalf("70000 bytes: %v", err)
	}
	small := Decoder{MaxBytes: 100}
	err = small.Decode(TopicCart, []byte(cartRecord), &e)
	if err == nil || err.Error() != "record: 316 bytes exceeds limit 100" {
		t.Fatalf("MaxBytes 100: %v", err)
	}
}

func TestDecodeConfiguredTopics(t *testing.T) {
	d := Decoder{Topics: InputTopics{Cart: "shop.cart"}}
	var e Event
	if err := d.Decode("shop.cart", []byte(cartRecord), &e); err != nil {
		t.Fatal(err)
	}
	err := d.Decode("shop.cart", []byte(rec(Purchase)), &e)
	if err == nil || err.Error() != `type: "purchase" belongs on storefront.transactions, not shop.cart` {
		t.Fatal(err)
	}
	err = d.Decode(TopicTransactions, []byte(cartRecord), &e)
	if err == nil || err.Error() != `type: "add_to_cart" belongs on shop.cart, not storefront.transactions` {
		t.Fatal(err)
	}
}

func TestDecodeRejectionsAreValidationErrors(t *testing.T) {
	var d Decoder
	var e Event
	for _, record := range []string{"", "{", "[]", cartRecord + "x", rec(AddToCart, `"price":"x"`), rec(AddToCart, `"price":-3`)} {
		err := d.Decode(TopicCart, []byte(record), &e)
		var ve *ValidationError
		if !errors.Is(err, ErrInvalid) || !errors.As(err, &ve) || ve.Field == "" || ve.Reason == "" {
			t.Errorf("%q: %#v", record, err)
		}
	}
}

func TestDecodeReusesTheEvent(t *testing.T) {
	var d Decoder
	var e Event
	if err := d.Decode(TopicTransactions, []byte(rec(Purchase)), &e); err != nil {
		t.Fatal(err)
	}
	if err := d.Decode(TopicClickstream, []byte(rec(PageView, "-device", "-schema_version")), &e); err != nil {
		t.Fatal(err)
	}
	if e.OrderID != "" || e.Currency != "" || e.Device != "" || e.SchemaVersion != -1 || e.Amount == e.Amount {
		t.Fatalf("fields of the previous event survived: %+v", e)
	}
}

func TestDecodeIsZeroCopy(t *testing.T) {
	value := []byte(cartRecord)
	var d Decoder
	var e Event
	if err := d.Decode(TopicCart, value, &e); err != nil {
		t.Fatal(err)
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(value)))
	for _, s := range []string{e.EventID, e.Type, e.TS, e.UserID, e.ProductID, e.Device} {
		p := uintptr(unsafe.Pointer(unsafe.StringData(s)))
		if p < start || p >= start+uintptr(len(value)) {
			t.Errorf("%q does not point into the record", s)
		}
	}
}

// TestDecodeDoesNotAllocate guards the hot path: one valid record of every
// type, decoded into a reused Event, allocates nothing.
func TestDecodeDoesNotAllocate(t *testing.T) {
	var d Decoder
	var e Event
	records := [][]byte{[]byte(cartRecord)}
	for _, typ := range allTypes {
		s := sample(typ)
		s.TS = "2026-11-23T15:45:00.123+05:30"
		records = append(records, s.AppendJSON(nil))
	}
	for _, r := range records {
		topic := TopicOf(string(r[strings.Index(string(r), `"type":"`)+8 : strings.Index(string(r), `","ts"`)]))
		if n := testing.AllocsPerRun(200, func() {
			if err := d.Decode(topic, r, &e); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: %v allocations per Decode, want 0", r, n)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	value := []byte(cartRecord)
	var d Decoder
	var e Event
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		if err := d.Decode(TopicCart, value, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeBaselineEncodingJSON is the baseline: the standard library
// decoding the same record into the same struct, without any validation.
func BenchmarkDecodeBaselineEncodingJSON(b *testing.B) {
	value := []byte(cartRecord)
	var e Event
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		e.Reset()
		if err := stdjson.Unmarshal(value, &e); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeParseOnly is segmentio's zero-copy parse alone, without
// the checks around it: the cost of the contract is Decode minus this.
func BenchmarkDecodeParseOnly(b *testing.B) {
	value := []byte(cartRecord)
	var w wireEvent
	b.ReportAllocs()
	b.SetBytes(int64(len(value)))
	for b.Loop() {
		w.Event.Reset()
		if _, err := json.Parse(value, &w, parseFlags); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeInvalid measures a rejection (negative price), which
// allocates its error.
func BenchmarkDecodeInvalid(b *testing.B) {
	value := []byte(strings.Replace(cartRecord, `"price":89.9`, `"price":-3`, 1))
	var d Decoder
	var e Event
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(TopicCart, value, &e); err == nil {
			b.Fatal("accepted a negative price")
		}
	}
}
