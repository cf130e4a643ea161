package schemas

import (
	stdjson "encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// flatColumns is what a record type looks like as ClickHouse columns: json
// names, embedded structs (Segments, ModelMetrics) inlined, a nested struct
// (Window, *Dataset) prefixed with its field name, time.Time as DateTime
// plus an epoch-milliseconds companion, a map as parallel _keys/_values
// arrays, Profile kept as its JSON string.
func flatColumns(t reflect.Type, prefix string) map[string]string {
	out := map[string]string{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Map:
			// No Map on 18.16: parallel key and value arrays.
			out[prefix+name+"_keys"] = "Array(" + goKind(ft.Key()) + ")"
			out[prefix+name+"_values"] = "Array(" + goKind(ft.Elem()) + ")"
		case ft == reflect.TypeFor[time.Time]():
			out[prefix+name] = "DateTime"
			out[prefix+name+"_ms"] = "UInt64"
		case ft == reflect.TypeFor[Profile]():
			out[prefix+name] = "String"
		case ft.Kind() == reflect.Struct && f.Anonymous, ft == reflect.TypeFor[ModelMetrics]():
			for k, v := range flatColumns(ft, prefix) {
				out[k] = v
			}
		case ft.Kind() == reflect.Struct:
			for k, v := range flatColumns(ft, prefix+name+"_") {
				out[k] = v
			}
		default:
			out[prefix+name] = goKind(ft)
		}
	}
	return out
}

func goKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "String"
	case reflect.Float64:
		return "Float64"
	case reflect.Int, reflect.Int64:
		return "int"
	case reflect.Bool:
		return "UInt8"
	case reflect.Slice:
		return "Array(" + goKind(t.Elem()) + ")"
	}
	return "unsupported " + t.String()
}

// compatible reports whether a ClickHouse column type holds a Go field:
// integers go to any (U)Int width the DDL chose for them.
func compatible(goType, chType string) bool {
	if goType == "int" {
		return strings.HasPrefix(chType, "UInt") || strings.HasPrefix(chType, "Int")
	}
	return goType == chType
}

// TestClickHouseDDLMatchesTheRecordTypes is STYLE rule 10 for ClickHouse:
// every field of every record the sink writes has a column of a compatible
// type, and every column is a field or one of the named sink extras.
func TestClickHouseDDLMatchesTheRecordTypes(t *testing.T) {
	kafka := []string{"kafka_partition", "kafka_offset"}
	cases := []struct {
		table  string
		record reflect.Type
		extra  []string
	}{
		{"events", reflect.TypeFor[Event](), append([]string{"kafka_topic", "ts_ms"}, kafka...)},
		{"features", reflect.TypeFor[FeatureVector](), kafka},
		{"predictions", reflect.TypeFor[Prediction](), kafka},
		{"labels", reflect.TypeFor[Label](), kafka},
		{"windows", reflect.TypeFor[WindowResult](), kafka},
		{"alerts", reflect.TypeFor[Alert](), nil},
		{"reports", reflect.TypeFor[Report](), nil},
		{"retrain_requests", reflect.TypeFor[RetrainRequest](), nil},
		{"model_versions", reflect.TypeFor[ModelVersion](), nil},
		{"model_aliases", reflect.TypeFor[AliasMove](), nil},
	}
	tables := ClickHouseTables()
	covered := map[string]bool{"dead_letters": true} // raw bytes + headers, no record type
	for _, c := range cases {
		covered[c.table] = true
		cols, ok := tables[c.table]
		if !ok {
			t.Errorf("no table %s in schemas/clickhouse", c.table)
			continue
		}
		want := flatColumns(c.record, "")
		if c.table == "events" {
			// Event.TS is the contract's RFC 3339 string; the table keeps
			// it parsed.
			want["ts"] = "DateTime"
		}
		have := map[string]string{}
		for _, col := range cols {
			have[col.Name] = col.Type
		}
		for name, typ := range want {
			got, ok := have[name]
			if !ok {
				t.Errorf("%s: field %s (%s) has no column", c.table, name, typ)
			} else if !compatible(typ, got) {
				t.Errorf("%s.%s: column type %s cannot hold %s", c.table, name, got, typ)
			}
		}
		for _, col := range cols {
			if _, ok := want[col.Name]; !ok && !contains(c.extra, col.Name) {
				t.Errorf("%s.%s: column is neither a field of %s nor a sink extra", c.table, col.Name, c.record)
			}
		}
	}
	for name := range tables {
		if !covered[name] {
			t.Errorf("table %s is not checked against a record type", name)
		}
	}
}

// TestClickHouseEventsTableHoldsEveryContractField checks the events table
// against the JSON Schema files producers validate with.
func TestClickHouseEventsTableHoldsEveryContractField(t *testing.T) {
	have := map[string]bool{}
	for _, col := range ClickHouseTables()["events"] {
		have[col.Name] = true
	}
	for _, topic := range []string{TopicClickstream, TopicCart, TopicTransactions} {
		b, _ := JSONSchema(topic)
		var doc struct {
			Properties map[string]any `json:"properties"`
		}
		if err := stdjson.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if len(doc.Properties) < 10 {
			t.Fatalf("%s: only %d properties", topic, len(doc.Properties))
		}
		for p := range doc.Properties {
			if !have[p] {
				t.Errorf("%s: property %s has no column in events", topic, p)
			}
		}
	}
}

func TestClickHouseDDLIsIdempotentAndParameterised(t *testing.T) {
	stmts := ClickHouseDDL("analytics")
	if len(stmts) < 9 || !strings.HasPrefix(stmts[0], "CREATE DATABASE IF NOT EXISTS analytics") {
		t.Fatalf("first statement %q of %d", stmts[0], len(stmts))
	}
	for _, s := range stmts[1:] {
		if !strings.HasPrefix(s, "CREATE TABLE IF NOT EXISTS analytics.") {
			t.Errorf("statement does not create a table idempotently in the database: %.60q", s)
		}
		for _, banned := range []string{"DateTime64", "Map(", "Bool", "TTL", "CODEC", "INDEX", "{database}"} {
			if strings.Contains(s, banned) {
				t.Errorf("statement uses %s (not on ClickHouse 18.16, see CLICKHOUSE.md): %.60q", banned, s)
			}
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestClickHouseTablesHoldTheControlTopicSchemas checks the alerts, reports
// and registry tables against the JSON Schema files subscribers read
// (driftline.alerts, driftline.reports, driftline.models, driftline.retrain): every property has its column, a
// nested object's properties as <name>_<property> (metrics inlined), a map
// (additionalProperties) as <name>_keys and <name>_values, the reference
// profile as its JSON string.
func TestClickHouseTablesHoldTheControlTopicSchemas(t *testing.T) {
	type prop struct {
		Type                 string          `json:"type"`
		Properties           map[string]prop `json:"properties"`
		AdditionalProperties any             `json:"additionalProperties"`
		Ref                  string          `json:"$ref"`
	}
	type doc struct {
		Properties map[string]prop `json:"properties"`
		Defs       map[string]prop `json:"$defs"`
	}
	read := func(name string) doc {
		b, err := jsonSchemaFiles.ReadFile("jsonschema/" + name + ".json")
		if err != nil {
			t.Skipf("no %s JSON Schema: %v", name, err)
		}
		var d doc
		if err := stdjson.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	tables := ClickHouseTables()
	check := func(table string, props map[string]prop, inline ...string) {
		t.Helper()
		have := map[string]bool{}
		for _, c := range tables[table] {
			have[c.Name] = true
		}
		if len(props) < 5 {
			t.Fatalf("%s: only %d schema properties", table, len(props))
		}
		for name, p := range props {
			switch {
			case contains(inline, name):
				for sub := range p.Properties {
					if !have[sub] {
						t.Errorf("%s: %s.%s has no column %s", table, name, sub, sub)
					}
				}
			case p.Type == "object" && len(p.Properties) > 0:
				for sub := range p.Properties {
					if !have[name+"_"+sub] {
						t.Errorf("%s: %s.%s has no column %s_%s", table, name, sub, name, sub)
					}
				}
			case p.Type == "object" && p.AdditionalProperties != nil && name != "reference":
				if !have[name+"_keys"] || !have[name+"_values"] {
					t.Errorf("%s: map %s has no %s_keys/%s_values columns", table, name, name, name)
				}
			default:
				if !have[name] {
					t.Errorf("%s: property %s has no column", table, name)
				}
			}
		}
	}
	check("alerts", read(TopicAlerts).Properties)
	check("reports", read(TopicReports).Properties)
	check("windows", read(TopicWindows).Properties)
	check("retrain_requests", read(TopicRetrain).Properties)
	models := read(TopicModels)
	check("model_versions", models.Defs["version"].Properties, "metrics")
	check("model_aliases", models.Defs["alias"].Properties)
}
