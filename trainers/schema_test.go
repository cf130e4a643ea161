package trainers

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/schematest"
	"github.com/driftline/driftline/schemas"
)

// TestRegistryRecordsMatchTheirJSONSchema holds
// schemas/jsonschema/driftline.models.json and the records the trainers
// write together: a trained version, a gated alias move, a shadow clear.
func TestRegistryRecordsMatchTheirJSONSchema(t *testing.T) {
	sch := schematest.Compile(t, schemas.TopicModels)
	validate := func(name string, rec any) error {
		b, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return sch.Validate(v)
	}
	res, err := Train(TrainConfig{}, names, labelled(rand.New(rand.NewPCG(8, 8)), 1000, 1, t0), nil)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Version
	v.Model, v.Version = "m", 1
	now := time.Now().UTC()
	segNames, segRows := storefrontRows(rand.New(rand.NewPCG(14, 14)), 3000, 4)
	segRes, err := Train(TrainConfig{}, segNames, segRows, nil)
	if err != nil {
		t.Fatal(err)
	}
	sv := segRes.Version
	sv.Model, sv.Version = "m", 2
	if len(sv.Reference.Segments) == 0 {
		t.Fatal("no segment profiles to validate")
	}
	for name, rec := range map[string]schemas.RegistryRecord{
		"version":                       {Kind: schemas.RegistryVersion, Version: &v},
		"version with segment profiles": {Kind: schemas.RegistryVersion, Version: &sv},
		"reservation": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasReserved, Version: 3, Seq: 3, At: now,
			Reason: "version number reserved for retrain request k", Owner: "trainer-x/1", RetrainOf: "k"}},
		"retired on promotion": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasRetired, Version: 1, At: now,
			Seq: 1, Decision: schemas.DecisionShadowPromoted, Evidence: map[string]float64{"shadow_auc": 0.8}}},
		"challenger": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasChallenger, Version: 2, At: now,
			Seq: 1, Decision: schemas.DecisionGated, Evidence: map[string]float64{"gate_passed": 0}}},
		"gated move": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasChampion, Version: 1, At: now,
			Seq: 1, Decision: schemas.DecisionGated, Evidence: map[string]float64{"holdout_auc": 0.8}}},
		"shadow cleared": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasShadow, Previous: 2, At: now,
			Seq: 2, Decision: schemas.DecisionShadowRejected}},
		"pre-history move": {Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: schemas.AliasChampion, Version: 1, At: now}},
	} {
		if err := validate(name, rec); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The schema can fail: a move with an unknown decision, a version
	// without weights.
	bad := schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &schemas.AliasMove{Model: "m", Alias: "champion", At: now, Decision: "vibes"}}
	if validate("bad decision", bad) == nil {
		t.Error("the schema accepted an unknown decision")
	}
	var m map[string]any
	b, _ := json.Marshal(schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: &v})
	_ = json.Unmarshal(b, &m)
	delete(m["version"].(map[string]any), "weights")
	if validate("no weights", m) == nil {
		t.Error("the schema accepted a version without weights")
	}
}
