package schemas

import (
	"bufio"
	"bytes"
	stdjson "encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The contract corpus under testdata/contract: valid.jsonl holds records
// every implementation must accept, invalid.jsonl records it must reject,
// each with the field and (part of) the reason. Both files are checked
// against the Go validator and against the JSON Schema files: the schemas
// are the contract that producers see, so they must agree with what the
// pipeline does.

type validCase struct {
	Topic string             `json:"topic"`
	Note  string             `json:"note"`
	Value stdjson.RawMessage `json:"value"`
}

type invalidCase struct {
	Topic          string `json:"topic"`
	Note           string `json:"note"`
	Value          string `json:"value"`
	ValueBase64    []byte `json:"value_base64"` // base64, for bytes a JSON string cannot hold
	Field          string `json:"field"`
	ReasonContains string `json:"reason_contains"`
	// GoOnly says why the JSON Schema cannot see this problem; the schema
	// must then accept the record (so a stale flag is noticed).
	GoOnly   string `json:"go_only"`
	MaxBytes int    `json:"max_bytes"`
}

func (c invalidCase) value() []byte {
	if c.ValueBase64 != nil {
		return c.ValueBase64
	}
	return []byte(c.Value)
}

func readJSONL[T any](t *testing.T, path string) []T {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var c T
		dec := stdjson.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s:%d: %v", path, n, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// topicSchemas compiles the three embedded JSON Schema files, asserting
// formats (date-time) as a strict producer-side validator would.
func topicSchemas(t testing.TB) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, topic := range []string{TopicClickstream, TopicCart, TopicTransactions} {
		b, ok := JSONSchema(topic)
		if !ok {
			t.Fatalf("no JSON Schema for %s", topic)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		url := doc.(map[string]any)["$id"].(string)
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		if out[topic], err = c.Compile(url); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
	}
	return out
}

// schemaAccepts validates one raw record against a compiled schema; a
// record that is not one JSON value is rejected.
func schemaAccepts(sch *jsonschema.Schema, value []byte) (bool, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return false, err
	}
	if err := sch.Validate(doc); err != nil {
		return false, err
	}
	return true, nil
}

func TestValidCorpus(t *testing.T) {
	cases := readJSONL[validCase](t, "../testdata/contract/valid.jsonl")
	schemas := topicSchemas(t)
	seen := map[string]bool{}
	for _, c := range cases {
		var d Decoder
		var e Event
		if err := d.Decode(c.Topic, c.Value, &e); err != nil {
			t.Errorf("%s: Go rejects: %v\n%s", c.Note, err, c.Value)
			continue
		}
		seen[e.Type] = true
		if ok, err := schemaAccepts(schemas[c.Topic], c.Value); !ok {
			t.Errorf("%s: JSON Schema rejects: %v", c.Note, err)
		}
	}
	for _, typ := range allTypes {
		if !seen[typ] {
			t.Errorf("valid.jsonl has no valid %s", typ)
		}
	}
}

func TestInvalidCorpus(t *testing.T) {
	cases := readJSONL[invalidCase](t, "../testdata/contract/invalid.jsonl")
	if len(cases) < 25 {
		t.Fatalf("invalid.jsonl has %d cases, want 25 or more", len(cases))
	}
	schemas := topicSchemas(t)
	for _, c := range cases {
		d := Decoder{MaxBytes: c.MaxBytes}
		var e Event
		err := d.Decode(c.Topic, c.value(), &e)
		field, reason, ok := FieldReason(err)
		switch {
		case err == nil:
			t.Errorf("%s: Go accepts\n%s", c.Note, c.value())
		case !ok:
			t.Errorf("%s: not a *ValidationError: %v", c.Note, err)
		case field != c.Field || !strings.Contains(reason, c.ReasonContains):
			t.Errorf("%s:\n got %s: %s\nwant %s: ...%s...", c.Note, field, reason, c.Field, c.ReasonContains)
		}
		accepted, serr := schemaAccepts(schemas[c.Topic], c.value())
		switch {
		case c.GoOnly == "" && accepted:
			t.Errorf("%s: the JSON Schema of %s accepts what Go rejects (%v)", c.Note, c.Topic, err)
		case c.GoOnly != "" && !accepted:
			t.Errorf("%s: marked go_only (%s) but the JSON Schema rejects it too: %v", c.Note, c.GoOnly, serr)
		}
	}
}

// TestGoAndJSONSchemaAgreeOnMutations is the "single source of truth"
// check beyond the hand-written corpus: every field of every valid example
// is removed, nulled or replaced with values of every kind (the type with
// the types of every topic), and the Go validator and the JSON Schema must agree on each
// result. Values only the Decoder can judge (see go_only in the corpus)
// are not generated.
func TestGoAndJSONSchemaAgreeOnMutations(t *testing.T) {
	cases := readJSONL[validCase](t, "../testdata/contract/valid.jsonl")
	schemas := topicSchemas(t)
	var fields []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Event]()) {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" {
			fields = append(fields, name)
		}
	}
	values := []string{
		`null`, `""`, `"x"`, `"` + strings.Repeat("x", 128) + `"`, `"` + strings.Repeat("x", 129) + `"`,
		`"` + strings.Repeat("é", 256) + `"`, `"` + strings.Repeat("é", 257) + `"`,
		`-3`, `-1`, `-0.5`, `-0`, `0`, `1`, `2`, `1.5`, `1.0`, `1e3`, `9007199254740991`, `9007199254740992`,
		`1e400`, `true`, `[]`, `{}`, `"1"`,
		`"EUR"`, `"eur"`, `"EU"`, `"2026-11-23T10:00:00Z"`, `"2026-11-23T10:00:00"`, `"2026-02-30T10:00:00Z"`,
		`"2026-11-23T10:00:00.5-03:30"`, `"2026-11-23T10:00:00+25:00"`,
	}
	for _, typ := range allTypes {
		values = append(values, `"`+typ+`"`)
	}
	var d Decoder
	var e Event
	n := 0
	check := func(topic string, record []byte, what string) {
		n++
		goErr := d.Decode(topic, record, &e)
		ok, sErr := schemaAccepts(schemas[topic], record)
		if (goErr == nil) != ok {
			t.Errorf("%s on %s: Go says %v, JSON Schema says %v\n%s", what, topic, goErr, sErr, record)
		}
	}
	for _, c := range cases {
		var m map[string]stdjson.RawMessage
		if err := stdjson.Unmarshal(c.Value, &m); err != nil {
			t.Fatal(err)
		}
		// Other topics are reached by mutating type.
		for _, f := range fields {
			old, had := m[f]
			delete(m, f)
			b, _ := stdjson.Marshal(m)
			check(c.Topic, b, "without "+f)
			for _, v := range values {
				m[f] = stdjson.RawMessage(v)
				b, _ := stdjson.Marshal(m)
				check(c.Topic, b, f+"="+v)
			}
			if had {
				m[f] = old
			} else {
				delete(m, f)
			}
		}
	}
	t.Logf("%d mutated records, Go and JSON Schema agree", n)
}

// TestJSONSchemaFilesMatchTheEventStruct holds the three files to the Go
// contract: a property for every field of Event and nothing else, the same
// property rules in every file, and exactly the topic's types in each.
func TestJSONSchemaFilesMatchTheEventStruct(t *testing.T) {
	var tags []string
	for _, f := range reflect.VisibleFields(reflect.TypeFor[Event]()) {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "-" {
			tags = append(tags, name)
		}
	}
	slices.Sort(tags)
	var first map[string]any
	for _, topic := range []string{TopicClickstream, TopicCart, TopicTransactions} {
		b, _ := JSONSchema(topic)
		var doc struct {
			Schema     string                    `json:"$schema"`
			Required   []string                  `json:"required"`
			Properties map[string]map[string]any `json:"properties"`
		}
		if err := stdjson.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if doc.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q, want draft 2020-12", topic, doc.Schema)
		}
		if want := []string{"event_id", "type", "ts", "user_id", "session_id"}; !slices.Equal(doc.Required, want) {
			t.Errorf("%s: required %v, want %v", topic, doc.Required, want)
		}
		props := slices.Sorted(func(yield func(string) bool) {
			for k := range doc.Properties {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(props, tags) {
			t.Errorf("%s: properties %v, Event fields %v", topic, props, tags)
		}
		var enum []string
		for _, v := range doc.Properties["type"]["enum"].([]any) {
			enum = append(enum, v.(string))
		}
		var want []string
		for _, typ := range allTypes {
			if TopicOf(typ) == topic {
				want = append(want, typ)
			}
		}
		if !slices.Equal(enum, want) {
			t.Errorf("%s: type enum %v, want %v", topic, enum, want)
		}
		delete(doc.Properties, "type")
		shared := map[string]any{}
		for k, v := range doc.Properties {
			shared[k] = v
		}
		if first == nil {
			first = shared
		} else if !reflect.DeepEqual(first, shared) {
			t.Errorf("%s: property rules differ from %s's", topic, TopicClickstream)
		}
	}
	if _, ok := JSONSchema(TopicFeatures); ok {
		t.Errorf("JSONSchema(%q) reports a schema", TopicFeatures)
	}
}
