package schemas

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/segmentio/encoding/json"
)

// DefaultMaxBytes is the default size limit of one storefront record.
const DefaultMaxBytes = 64 << 10

// MaxSafeInteger is the largest integer field value accepted (2^53-1): the
// range in which every integer has an exact float64, so every JSON
// implementation (JavaScript included) reads the same number. The JSON
// Schema files state the same maximum.
const MaxSafeInteger = 1<<53 - 1

// InputTopics names the three storefront input topics. An empty name means
// the default (TopicClickstream, TopicCart, TopicTransactions).
type InputTopics struct {
	Clickstream  string `yaml:"clickstream"`
	Cart         string `yaml:"cart"`
	Transactions string `yaml:"transactions"`
}

// topicOf returns the configured topic an event type belongs on, or "" for
// an unknown type.
func (t *InputTopics) topicOf(eventType string) string {
	switch TopicOf(eventType) {
	case TopicClickstream:
		return or(t.Clickstream, TopicClickstream)
	case TopicCart:
		return or(t.Cart, TopicCart)
	case TopicTransactions:
		return or(t.Transactions, TopicTransactions)
	}
	return ""
}

// isInput reports whether topic is one of the three input topics.
func (t *InputTopics) isInput(topic string) bool {
	return topic == or(t.Clickstream, TopicClickstream) ||
		topic == or(t.Cart, TopicCart) ||
		topic == or(t.Transactions, TopicTransactions)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Decoder turns storefront records into validated Events: size limit, JSON
// decoding, the rules of Validate, and the check that the event type belongs
// on the topic the record came from. The zero value is ready to use.
//
// A Decoder is meant to be reused for every record of a consumer; it keeps
// scratch space and is not safe for concurrent use (give each goroutine its
// own). Decoding a valid record allocates nothing, provided its strings
// contain no JSON escapes (a string with a backslash escape needs its own
// copy). Rejections allocate their *ValidationError.
type Decoder struct {
	// MaxBytes is the largest record accepted, in bytes; 0 means
	// DefaultMaxBytes (64 KiB). Larger records are rejected before parsing.
	MaxBytes int `yaml:"max_bytes"`

	// Topics names the input topics for the wrong-topic check.
	Topics InputTopics `yaml:"topics"`

	w wireEvent
}

// wireEvent is what the JSON decoder fills: the Event, except that the
// integer fields are read as numbers (the outer fields shadow the Event's
// ones, as in encoding/json). JSON Schema's integer is any number without a
// fractional part, so 2, 2.0 and 2e0 are all the integer 2, where a Go int
// field would reject the last two. NaN marks a field the record did not
// carry (or carried as null).
type wireEvent struct {
	Event
	SchemaVersion float64 `json:"schema_version"`
	Quantity      float64 `json:"quantity"`
	Items         float64 `json:"items"`
}

// absent is put into the required string fields before parsing, to tell a
// field the record did not carry from one it carried as "". It is compared
// by address: a decoded string points into the record (or, when it had
// escapes, into a fresh copy), never at this variable's bytes.
var absent = "\x00absent"

func isAbsent(s string) bool {
	return len(s) == len(absent) && unsafe.StringData(s) == unsafe.StringData(absent)
}

// parseFlags: strings point into the record, and field names match
// exactly, as they do for a JSON Schema validator.
const parseFlags = json.ZeroCopy | json.DontMatchCaseInsensitiveStructFields

// Decode decodes and validates one storefront record read from topic into e.
// A nil error means e holds the event, it is valid, e.TimeMillis is set,
// and, when topic is one of the input topics, the event's type belongs
// there. Otherwise the error is a *ValidationError (errors.Is ErrInvalid)
// and e is reset.
//
// Strings in e point into value (zero copy): e is only valid until value is
// reused or modified. strings.Clone what must outlive the record.
//
// Unknown fields are ignored. Field names match exactly (case-sensitive, as
// in the JSON Schema). A field set to null counts as absent. Anything after
// the object other than whitespace makes the record invalid.
func (d *Decoder) Decode(topic string, value []byte, e *Event) error {
	if err := d.decode(topic, value, e); err != nil {
		e.Reset()
		return err
	}
	return nil
}

func (d *Decoder) decode(topic string, value []byte, e *Event) *ValidationError {
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(value) > limit {
		return invalid("record", strconv.Itoa(len(value))+" bytes exceeds limit "+strconv.Itoa(limit))
	}
	if !utf8.Valid(value) {
		return invalid("record", "not valid UTF-8 at byte "+strconv.Itoa(invalidUTF8At(value)))
	}
	if err := checkObject(value); err != nil {
		return err
	}

	w := &d.w
	w.Event.Reset()
	w.EventID, w.Type, w.TS, w.UserID, w.SessionID = absent, absent, absent, absent, absent
	w.SchemaVersion, w.Quantity, w.Items = math.NaN(), math.NaN(), math.NaN()
	rest, err := json.Parse(value, w, parseFlags)
	*e = w.Event
	w.Event = Event{} // the scratch space must not keep the record alive
	if err != nil {
		return parseError(err)
	}
	if len(rest) != 0 {
		return invalid("record", "invalid JSON: unexpected data after the object at byte "+
			strconv.Itoa(len(value)-len(rest)))
	}

	var x explicit
	x |= presentString(&e.EventID, explicitEventID)
	x |= presentString(&e.Type, explicitType)
	x |= presentString(&e.TS, explicitTS)
	x |= presentString(&e.UserID, explicitUserID)
	x |= presentString(&e.SessionID, explicitSessionID)
	var bad *ValidationError
	if e.SchemaVersion, bad = wireInt("schema_version", w.SchemaVersion, &x, explicitSchemaVersion); bad != nil {
		return bad
	}
	if e.Quantity, bad = wireInt("quantity", w.Quantity, &x, explicitQuantity); bad != nil {
		return bad
	}
	if e.Items, bad = wireInt("items", w.Items, &x, explicitItems); bad != nil {
		return bad
	}

	if err := e.validate(x); err != nil {
		return err
	}
	if d.Topics.isInput(topic) {
		if want := d.Topics.topicOf(e.Type); want != topic {
			return invalid("type", quote(e.Type)+" belongs on "+want+", not "+topic)
		}
	}
	return nil
}

// presentString turns the absent sentinel back into "" and reports an
// explicit "" with bit.
func presentString(s *string, bit explicit) explicit {
	switch {
	case isAbsent(*s):
		*s = ""
	case *s == "":
		return bit
	}
	return 0
}

// wireInt turns an integer field read as a number into the Event's int:
// NaN (not in the record) becomes -1, an explicit -1 is marked with bit.
func wireInt(field string, f float64, x *explicit, bit explicit) (int, *ValidationError) {
	switch {
	case math.IsNaN(f):
		return -1, nil
	case f != math.Trunc(f):
		return 0, invalid(field, "must be an integer")
	case math.Abs(f) > MaxSafeInteger:
		return 0, invalid(field, "integer out of range")
	}
	if f == -1 {
		*x |= bit
	}
	return int(f), nil
}

// checkObject rejects records whose top-level value is not an object (the
// JSON decoder would take null as an empty object).
func checkObject(value []byte) *ValidationError {
	i := 0
	for i < len(value) && isSpace(value[i]) {
		i++
	}
	if i == len(value) {
		return invalid("record", "invalid JSON: empty record")
	}
	var kind string
	switch c := value[i]; {
	case c == '{':
		return nil
	case c == '[':
		kind = "an array"
	case c == '"':
		kind = "a string"
	case c == 't' || c == 'f':
		kind = "a boolean"
	case c == 'n':
		kind = "null"
	case c == '-' || ('0' <= c && c <= '9'):
		kind = "a number"
	}
	if err := json.Unmarshal(value, new(any)); err != nil {
		return parseError(err)
	}
	return invalid("record", "must be a JSON object, got "+kind)
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// integerFields are read as float64 (see wireEvent) but are integers in
// the contract, and their reasons say so.
func integerField(field string) bool {
	return field == "schema_version" || field == "quantity" || field == "items"
}

// parseError maps an error of the JSON decoder to the field it is about: a
// type mismatch names the field ("price: must be a number"), a syntax error
// names the record and keeps the decoder's message.
func parseError(err error) *ValidationError {
	te, ok := err.(*json.UnmarshalTypeError)
	if ok && te.Field != "" && te.Type != nil {
		// segmentio puts the quoted offending input into Value; a number
		// there means a number the field's type cannot hold (1e400).
		v := strings.TrimPrefix(te.Value, `"`)
		number := v != "" && (v[0] == '-' || ('0' <= v[0] && v[0] <= '9'))
		switch {
		case integerField(te.Field) && number:
			return invalid(te.Field, "integer out of range")
		case integerField(te.Field):
			return invalid(te.Field, "must be an integer")
		case te.Type.Kind() == reflect.Float64 && number:
			return invalid(te.Field, "number out of range")
		case te.Type.Kind() == reflect.Float64:
			return invalid(te.Field, "must be a number")
		case te.Type.Kind() == reflect.String:
			return invalid(te.Field, "must be a string")
		}
		return invalid(te.Field, "has the wrong JSON type")
	}
	if ok {
		return invalid("record", "must be a JSON object")
	}
	// segmentio ends its messages with ": " and up to 32 bytes of the
	// input that follow the problem; at the end of input that is nothing.
	msg := strings.TrimSuffix(strings.TrimPrefix(err.Error(), "json: "), ": ")
	return invalid("record", "invalid JSON: "+msg)
}
