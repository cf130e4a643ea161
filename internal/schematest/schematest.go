// Package schematest compiles the JSON Schema files that document
// Driftline's topics (schemas/jsonschema/<topic>.json) for tests, asserting
// formats (date-time) as a strict subscriber-side validator would.
package schematest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Load compiles the JSON Schema of a topic, by its default name (e.g.
// "driftline.windows"), and returns it with the decoded document.
func Load(tb testing.TB, topic string) (*jsonschema.Schema, map[string]any) {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0) // internal/schematest/schematest.go in the module
	b, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "schemas", "jsonschema", topic+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("%s: %v", topic, err)
	}
	m, ok := doc.(map[string]any)
	if !ok {
		tb.Fatalf("%s: the schema is not a JSON object", topic)
	}
	url, _ := m["$id"].(string)
	if url == "" {
		url = topic + ".json"
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(url, doc); err != nil {
		tb.Fatal(err)
	}
	sch, err := c.Compile(url)
	if err != nil {
		tb.Fatalf("%s: %v", topic, err)
	}
	return sch, m
}

// Compile is Load without the document.
func Compile(tb testing.TB, topic string) *jsonschema.Schema {
	tb.Helper()
	sch, _ := Load(tb, topic)
	return sch
}
