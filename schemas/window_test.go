package schemas

import (
	"bytes"
	stdjson "encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/driftline/driftline/internal/schematest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

func sampleWindow() WindowResult {
	from := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	return WindowResult{
		Definitions: "golden", Model: "m", Feature: "u_price_max_tumble", Aggregation: "max", Kind: WindowTumbling,
		Entity: "user", Key: "u/1", Window: Window{From: from, To: from.Add(5 * time.Minute)},
		Value: 23.91, Events: 2, Watermark: from.Add(5*time.Minute + time.Second), InputPartition: 3,
	}
}

// TestWindowResultMatchesItsJSONSchema holds the Go record and the JSON
// Schema subscribers read together: the same properties, all required but
// the embedded segments (absent in user windows), and a record the stage
// encodes is valid while broken ones are not.
func TestWindowResultMatchesItsJSONSchema(t *testing.T) {
	sch, doc := schematest.Load(t, TopicWindows)
	var fields, mandatory []string
	rt := reflect.TypeFor[WindowResult]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		if f.Anonymous {
			for j := range f.Type.NumField() {
				name, _, _ := strings.Cut(f.Type.Field(j).Tag.Get("json"), ",")
				fields = append(fields, name)
			}
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		fields = append(fields, name)
		mandatory = append(mandatory, name)
	}
	var props []string
	for p := range doc["properties"].(map[string]any) {
		props = append(props, p)
	}
	var required []string
	for _, r := range doc["required"].([]any) {
		required = append(required, r.(string))
	}
	slices.Sort(fields)
	slices.Sort(mandatory)
	slices.Sort(props)
	slices.Sort(required)
	if !slices.Equal(fields, props) || !slices.Equal(mandatory, required) {
		t.Fatalf("WindowResult fields %v; schema properties %v, required %v", fields, props, required)
	}

	valid := func(v any) error {
		b, err := stdjson.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(inst)
	}
	if err := valid(sampleWindow()); err != nil {
		t.Fatalf("a well-formed window result is rejected: %v", err)
	}
	for name, mutate := range map[string]func(*WindowResult){
		"empty window":    func(r *WindowResult) { r.Events = 0 },
		"lifetime kind":   func(r *WindowResult) { r.Kind = "lifetime" },
		"unknown entity":  func(r *WindowResult) { r.Entity = "order" },
		"empty key":       func(r *WindowResult) { r.Key = "" },
		"unknown agg":     func(r *WindowResult) { r.Aggregation = "median" },
		"negative part":   func(r *WindowResult) { r.InputPartition = -1 },
		"no feature name": func(r *WindowResult) { r.Feature = "" },
	} {
		r := sampleWindow()
		mutate(&r)
		if valid(r) == nil {
			t.Errorf("%s: accepted by the JSON Schema", name)
		}
	}
}

func TestWindowKey(t *testing.T) {
	r := sampleWindow()
	from, to := r.Window.From.UnixMilli(), r.Window.To.UnixMilli()
	got := string(AppendWindowKey([]byte("x"), &r))
	want := "xgolden/u_price_max_tumble/user/" + itoa(from) + "/" + itoa(to) + "/u/1"
	if got != want {
		t.Fatalf("key %q, want %q", got, want)
	}
	// Every part of the window's identity is in the key; the value, the
	// watermark and the partition are not (a replay may differ in none of
	// them, but the key must not depend on them).
	seen := map[string]string{string(AppendWindowKey(nil, &r)): "base"}
	for name, mutate := range map[string]func(*WindowResult){
		"definitions": func(r *WindowResult) { r.Definitions = "other" },
		"feature":     func(r *WindowResult) { r.Feature = "f2" },
		"entity":      func(r *WindowResult) { r.Entity = "session" },
		"from":        func(r *WindowResult) { r.Window.From = r.Window.From.Add(time.Millisecond) },
		"to":          func(r *WindowResult) { r.Window.To = r.Window.To.Add(time.Millisecond) },
		"key":         func(r *WindowResult) { r.Key = "u/2" },
	} {
		c := sampleWindow()
		mutate(&c)
		k := string(AppendWindowKey(nil, &c))
		if prev, dup := seen[k]; dup {
			t.Errorf("changing %s gives the key of %s: %q", name, prev, k)
		}
		seen[k] = name
	}
	c := sampleWindow()
	c.Value, c.Watermark, c.InputPartition, c.Events = 1, c.Watermark.Add(time.Hour), 0, 9
	if string(AppendWindowKey(nil, &c)) != string(AppendWindowKey(nil, &r)) {
		t.Error("the key depends on more than the window's identity")
	}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = AppendWindowKey(buf[:0], &r) }); n != 0 {
		t.Errorf("AppendWindowKey into a buffer with room allocates %v times, want 0", n)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
