package schemas

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/schematest"
)

// The retrain topic's JSON Schema documents every field of RetrainRequest;
// a request the monitor writes (with decided_at) and one written before
// decided_at existed (without it) both decode and validate, the older one
// with a zero DecidedAt (unknown).
func TestRetrainRequestMatchesItsJSONSchema(t *testing.T) {
	sch, doc := schematest.Load(t, TopicRetrain)
	var fields, props []string
	rt := reflect.TypeFor[RetrainRequest]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	for p := range doc["properties"].(map[string]any) {
		props = append(props, p)
	}
	slices.Sort(fields)
	slices.Sort(props)
	if !slices.Equal(fields, props) {
		t.Fatalf("RetrainRequest fields %v; schema properties %v", fields, props)
	}
	validate := func(raw []byte) error {
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(inst)
	}
	at := time.Date(2026, 11, 23, 10, 15, 0, 0, time.UTC)
	req := RetrainRequest{IdempotencyKey: "m/v2/2026-11-23T10:00:00Z", Model: "m", FromVersion: 2, Reason: "drift",
		Alerts: []string{"m/v2/drift/price/psi/2026-11-23T10:15:00Z"}, DataFrom: at.Add(-15 * time.Minute), RequestedAt: time.Now().UTC(), DecidedAt: at}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(b); err != nil {
		t.Errorf("a request the monitor writes is rejected: %v", err)
	}
	var back RetrainRequest
	if err := json.Unmarshal(b, &back); err != nil || !back.DecidedAt.Equal(at) {
		t.Errorf("decided_at does not round-trip: %v, %v", back.DecidedAt, err)
	}

	old := []byte(`{"idempotency_key":"m/v2/2026-11-23T10:00:00Z","model":"m","from_version":2,"reason":"drift","alerts":["a1"],` +
		`"data_from":"2026-11-23T10:00:00Z","requested_at":"2026-11-23T10:15:01Z"}`)
	if err := validate(old); err != nil {
		t.Errorf("a request from before decided_at is rejected: %v", err)
	}
	var o RetrainRequest
	if err := json.Unmarshal(old, &o); err != nil || !o.DecidedAt.IsZero() || o.Model != "m" {
		t.Errorf("a request from before decided_at decodes as %+v, %v; want a zero DecidedAt", o, err)
	}
	boot, _ := json.Marshal(RetrainRequest{IdempotencyKey: "m/bootstrap", Model: "m", Reason: "bootstrap", RequestedAt: time.Now().UTC()})
	if err := validate(boot); err != nil {
		t.Errorf("a bootstrap request (zero times) is rejected: %v", err)
	}
	for name, raw := range map[string]string{
		"no model":       strings.Replace(string(b), `"model":"m"`, `"model":""`, 1),
		"bad decided_at": strings.Replace(string(b), `"decided_at":"2026-11-23T10:15:00Z"`, `"decided_at":"yesterday"`, 1),
	} {
		if raw == string(b) {
			t.Fatalf("%s: mutation did not apply to %s", name, b)
		}
		if validate([]byte(raw)) == nil {
			t.Errorf("%s: accepted by the JSON Schema", name)
		}
	}
}
