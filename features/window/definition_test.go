package window

import (
	"strings"
	"testing"
)

func TestParseRejects(t *testing.T) {
	f := func(name, yaml, want string) {
		t.Helper()
		_, err := Parse([]byte(yaml))
		if err == nil {
			t.Errorf("%s: no error, want one containing %q", name, want)
			return
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q, want it to contain %q", name, err, want)
		}
	}
	one := func(body string) string {
		return "features:\n  - name: x\n    entity: session\n    events: [add_to_cart]\n" + body
	}
	f("empty", "", "empty document")
	f("no features", "name: m\n", "at least one feature")
	f("unknown top key", "name: m\nfeaturez: []\n", "field featurez not found")
	f("unknown feature key", one("    aggregation: count\n    colour: red\n"), "field colour not found")
	f("unknown window key", one("    aggregation: count\n    window: {kind: tumbling, size: 1m, width: 2m}\n"), "field width not found")
	f("unknown indicator key", one("    aggregation: max\n    value: {field: device, equalz: a}\n"), `unknown key "equalz"`)
	f("missing name", "features:\n  - entity: user\n    events: [purchase]\n    aggregation: count\n", "features[0]: name: is required")
	f("duplicate", one("    aggregation: count\n")+"  - name: x\n    entity: user\n    events: [purchase]\n    aggregation: count\n",
		`feature "x": name: duplicate of features[0]`)
	f("entity", strings.Replace(one("    aggregation: count\n"), "session", "shop", 1), `feature "x": entity: must be user or session, got "shop"`)
	f("event type", strings.Replace(one("    aggregation: count\n"), "add_to_cart", "add_to_basket", 1), `feature "x": events: unknown event type "add_to_basket"`)
	f("no events", "features:\n  - name: x\n    entity: user\n    aggregation: count\n", `feature "x": events: at least one event type is required`)
	f("aggregation", one("    aggregation: median\n"), `feature "x": aggregation: unknown "median"`)
	f("value field", one("    aggregation: sum\n    value: colour\n"), `feature "x": value: unknown selector "colour"`)
	f("value not carried", one("    aggregation: sum\n    value: amount\n"), `feature "x": value: amount is not carried by event type add_to_cart`)
	f("sum without value", one("    aggregation: sum\n"), `feature "x": value: sum needs a value`)
	f("count with value", one("    aggregation: count\n    value: price\n"), `feature "x": value: count takes no value`)
	f("distinct numeric", one("    aggregation: distinct_count\n    value: price\n"), `feature "x": value: distinct_count needs a string field`)
	f("filter field", one("    aggregation: count\n    filter: {colour: red}\n"), `feature "x": filter.colour: unknown field`)
	f("window kind", one("    aggregation: count\n    window: {kind: sliding}\n"), `feature "x": window.kind: unknown "sliding"`)
	f("size zero", one("    aggregation: count\n    window: {kind: tumbling}\n"), `feature "x": window.size: must be > 0`)
	f("size negative", one("    aggregation: count\n    window: {kind: tumbling, size: -1m}\n"), `feature "x": window.size: must be > 0`)
	f("hop missing", one("    aggregation: count\n    window: {kind: hopping, size: 10m}\n"), `feature "x": window.hop: must be > 0`)
	f("hop not dividing", one("    aggregation: count\n    window: {kind: hopping, size: 10m, hop: 3m}\n"), `feature "x": window.size: must be a multiple of window.hop`)
	f("hop > size", one("    aggregation: count\n    window: {kind: hopping, size: 1m, hop: 3m}\n"), `feature "x": window.hop: must be <= window.size`)
	f("gap missing", one("    aggregation: count\n    window: {kind: session}\n"), `feature "x": window.gap: must be > 0`)
	f("gap on tumbling", one("    aggregation: count\n    window: {kind: tumbling, size: 1m, gap: 1m}\n"), `feature "x": window.gap: a tumbling window takes no gap`)
	f("unit", one("    aggregation: time_since_last\n    unit: weeks\n"), `feature "x": unit: must be ms, s, m, h or d`)
	f("unit on count", one("    aggregation: count\n    unit: h\n"), `feature "x": unit: only time_since_last`)
	f("point_in_time range", one("    aggregation: count\n    point_in_time: 9\n"), `feature "x": point_in_time: must be in [1, 8], got 9`)
	f("point_in_time window", one("    aggregation: count\n    point_in_time: 2\n    window: {kind: session, gap: 1m}\n"), `feature "x": point_in_time: only lifetime windows take it, not session`)
	f("point_in_time distinct", one("    aggregation: distinct_count\n    value: product_id\n    point_in_time: 2\n"), `feature "x": point_in_time: distinct_count does not take it`)
	f("max_distinct", one("    aggregation: distinct_count\n    value: product_id\n    max_distinct: 100\n"), `feature "x": max_distinct: must be in [1, 64]`)
}

func TestPurchasePropensityDefinitions(t *testing.T) {
	d := PurchasePropensity()
	want := []string{
		"session_events", "session_product_views", "session_searches",
		"session_cart_adds", "session_cart_removes", "session_cart_value",
		"session_mean_viewed_price", "session_minutes", "is_checkout",
		"user_sessions", "user_purchases", "hours_since_last_purchase",
		"device_mobile", "referrer_ads", "referrer_email",
	}
	if got := d.Names(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("names %v, want %v", got, want)
	}
	if d.Index("user_purchases") != 10 || d.Index("nope") != -1 {
		t.Fatal("Index")
	}
}
