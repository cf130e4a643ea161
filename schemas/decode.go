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
// A Decoder is meant to be reused for every record of a consumer; it is not
// safe for concurrent use (give each goroutine its own). Decoding a valid
// record allocates nothing, provided its strings contain no JSON escapes
// (a string with a backslash escape needs its own copy). Rejections
// allocate their *ValidationError.
type Decoder struct {
	// MaxBytes is the largest record accepted, in bytes; 0 means
	// DefaultMaxBytes (64 KiB). Larger records are rejected before parsing.
	MaxBytes int `yaml:"max_bytes"`

	// Topics names the input topics for the wrong-topic check.
	Topics InputTopics `yaml:"topics"`
}

// Sentinels the Decoder puts into an Event before parsing, to tell a field
// the record did not carry from one it carried with the value of Reset's
// "missing" sentinel ("" or -1). absent is compared by address: a decoded
// string points into the record (or, when it had escapes, into a fresh
// copy), never at this variable's bytes.
var absent = "\x00absent"

const absentInt = math.MinInt

func isAbsent(s string) bool {
	return len(s) == len(absent) && unsafe.StringData(s) == unsafe.StringData(absent)
}

const parseFlags = json.ZeroCopy | json.DontMatchCaseInsensitiveStructFields

// Decode decodes and validates one storefront record read from topic into e
// (which it resets first). A nil error means e is valid, e.TimeMillis is
// set, and, when topic is one of the input topics, the event's type belongs
// there. Otherwise the error is a *ValidationError (errors.Is ErrInvalid)
// and e's contents are unspecified.
//
// Strings in e point into value (zero copy): e is only valid until value is
// reused or modified. strings.Clone what must outlive the record.
//
// Unknown fields are ignored. Field names match exactly (case-sensitive, as
// in the JSON Schema). A field set to null counts as absent. Anything after
// the object other than whitespace makes the record invalid.
func (d *Decoder) Decode(topic string, value []byte, e *Event) error {
	if err := d.decode(topic, value, e); err != nil {
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

	e.Reset()
	e.EventID, e.Type, e.TS, e.UserID, e.SessionID = absent, absent, absent, absent, absent
	e.SchemaVersion, e.Quantity, e.Items = absentInt, absentInt, absentInt

	rest, err := json.Parse(value, e, parseFlags)
	if err != nil {
		e.Reset()
		return parseError(err)
	}
	if len(rest) != 0 {
		e.Reset()
		return invalid("record", "invalid JSON: unexpected data after the object at byte "+
			strconv.Itoa(len(value)-len(rest)))
	}

	var x explicit
	x |= presentString(&e.EventID, explicitEventID)
	x |= presentString(&e.Type, explicitType)
	x |= presentString(&e.TS, explicitTS)
	x |= presentString(&e.UserID, explicitUserID)
	x |= presentString(&e.SessionID, explicitSessionID)
	x |= presentInt(&e.SchemaVersion, explicitSchemaVersion)
	x |= presentInt(&e.Quantity, explicitQuantity)
	x |= presentInt(&e.Items, explicitItems)

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

// presentInt turns the absent sentinel back into -1 and reports an explicit
// -1 with bit.
func presentInt(n *int, bit explicit) explicit {
	switch *n {
	case absentInt:
		*n = -1
	case -1:
		return bit
	}
	return 0
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
	if err := json.Unmarshal(value, new(any)); err != nil || kind == "" {
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

// parseError maps an error of the JSON decoder to the field it is about: a
// type mismatch names the field ("price: must be a number"), a syntax error
// names the record and keeps the decoder's message.
func parseError(err error) *ValidationError {
	if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field != "" && te.Type != nil {
		// segmentio puts the quoted offending input, or "number N
		// overflows", into Value. A number token there means the value
		// was a number of the wrong kind or size, not of the wrong type.
		v := strings.TrimPrefix(te.Value, `"`)
		number := v != "" && (v[0] == '-' || ('0' <= v[0] && v[0] <= '9') || strings.HasPrefix(v, "number "))
		switch te.Type.Kind() {
		case reflect.Float64:
			if number {
				return invalid(te.Field, "number out of range")
			}
			return invalid(te.Field, "must be a number")
		case reflect.Int:
			if number && strings.Contains(v, "overflows") {
				return invalid(te.Field, "integer out of range")
			}
			return invalid(te.Field, "must be an integer")
		case reflect.String:
			return invalid(te.Field, "must be a string")
		}
		return invalid(te.Field, "has the wrong JSON type")
	}
	if te, ok := err.(*json.UnmarshalTypeError); ok && te.Field == "" {
		return invalid("record", "must be a JSON object")
	}
	if err == nil { // a non-object that the decoder took for valid JSON
		return invalid("record", "must be a JSON object")
	}
	// segmentio ends its messages with ": " and up to 32 bytes of the
	// input that follow the problem; at the end of input that is nothing.
	msg := strings.TrimSuffix(strings.TrimPrefix(err.Error(), "json: "), ": ")
	return invalid("record", "invalid JSON: "+msg)
}
