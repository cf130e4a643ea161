package demo

import (
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/driftline/driftline/internal/chtest"
	"github.com/driftline/driftline/schemas"
	"github.com/driftline/driftline/trainers"
)

// namedQuery is one query of deploy/clickhouse/queries.sql.
type namedQuery struct{ name, sql string }

var queryName = regexp.MustCompile(`(?m)^-- name: (\S+)\n`)

// analyticsQueries reads deploy/clickhouse/queries.sql: each "-- name:"
// line starts a query; comment lines are dropped, {database} is replaced.
func analyticsQueries(t *testing.T, database string) []namedQuery {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "clickhouse", "queries.sql"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	idx := queryName.FindAllStringSubmatchIndex(s, -1)
	var out []namedQuery
	for i, m := range idx {
		end := len(s)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		var lines []string
		for _, l := range strings.Split(s[m[1]:end], "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		sql := strings.ReplaceAll(strings.TrimSpace(strings.Join(lines, "\n")), "{database}", database)
		out = append(out, namedQuery{name: s[m[2]:m[3]], sql: sql})
	}
	return out
}

// rows runs a query and returns its rows as column name -> value.
func rows(t *testing.T, conn driver.Conn, sql string, args ...any) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rs, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rs.Close()
	types := rs.ColumnTypes()
	var out []map[string]any
	for rs.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rs.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		row := map[string]any{}
		for i, ct := range types {
			row[ct.Name()] = reflect.ValueOf(dest[i]).Elem().Interface()
		}
		out = append(out, row)
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func mean(s []float64) float64 {
	var m float64
	for _, v := range s {
		m += v
	}
	return m / float64(len(s))
}

func num(v any) float64 {
	r := reflect.ValueOf(v)
	switch {
	case r.CanInt():
		return float64(r.Int())
	case r.CanUint():
		return float64(r.Uint())
	case r.CanFloat():
		return r.Float()
	}
	panic("not a number: " + r.Type().String())
}

// TestAnalyticsQueriesOnDemoData runs `driftline demo --clickhouse DSN`
// in-process and then every query of deploy/clickhouse/queries.sql on what
// the sink wrote, checking that each answers its question with plausible
// figures; the training set of every version is reproduced and hashed to
// the fingerprint the trainer recorded.
func TestAnalyticsQueriesOnDemoData(t *testing.T) {
	dsn := chtest.DSN(t)
	if testing.Short() {
		t.Skip("the demo runs ~30 s of simulated storefront")
	}
	conn := chtest.Conn(t, dsn)
	db := chtest.Database(t, conn)
	sum, err := Run(context.Background(), Config{ClickHouseDSN: dsn, ClickHouseDatabase: db}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("demo with ClickHouse failed: %v", err)
	}
	caughtUp := false
	for _, s := range sum.Timeline {
		caughtUp = caughtUp || strings.HasPrefix(s.What, "ClickHouse: the sink caught up")
	}
	if !caughtUp {
		t.Fatalf("the demo's timeline does not say the sink caught up: %+v", sum.Timeline)
	}
	var events, rejected uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".events FINAL").Scan(&events); err != nil {
		t.Fatal(err)
	}
	// Late events are valid: they are dead-lettered by the feature stage
	// and still written to events.
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+db+".dead_letters FINAL WHERE reason NOT LIKE 'late:%'").Scan(&rejected); err != nil {
		t.Fatal(err)
	}
	// Every record produced is in ClickHouse: as an event or as a dead
	// letter (the summary's DLQ count stops when the loop closes; the
	// sink drains what came after).
	if int(events+rejected) != sum.Events || int(rejected) < sum.DLQ {
		t.Errorf("produced %d records (%d dead-lettered by the time the loop closed); ClickHouse has %d events and %d rejected records",
			sum.Events, sum.DLQ, events, rejected)
	}

	var shiftAt time.Time // event time of the storefront's shift
	for _, s := range sum.Timeline {
		if strings.HasPrefix(s.What, "shift injected") {
			shiftAt = s.EventTime
		}
	}
	if shiftAt.IsZero() {
		t.Fatalf("the demo's timeline has no shift: %+v", sum.Timeline)
	}

	queries := analyticsQueries(t, db)
	checks := map[string]func(t *testing.T, rs []map[string]any){
		"conversion_funnel_by_hour_and_device": func(t *testing.T, rs []map[string]any) {
			var purchased float64
			for _, r := range rs {
				steps := []string{"sessions", "viewed_product", "added_to_cart", "started_checkout", "purchased"}
				for i := 1; i < len(steps); i++ {
					if num(r[steps[i]]) > num(r[steps[i-1]]) {
						t.Errorf("funnel grows from %s to %s: %v", steps[i-1], steps[i], r)
					}
				}
				purchased += num(r["purchased"])
			}
			if len(rs) < 6 || purchased == 0 {
				t.Errorf("%d funnel rows, %v purchases", len(rs), purchased)
			}
		},
		"accuracy_by_version_segment_over_time": func(t *testing.T, rs []map[string]any) {
			versions := map[float64]bool{}
			segments := map[string]bool{}
			// All traffic, per version: v1's rolling AUC at its best (labels
			// of predictions before the shift) and at its worst (after it,
			// later), and the last version's latest AUC (after the retrain).
			type point struct {
				at  time.Time
				auc float64
			}
			best, worst, last := map[float64]point{}, map[float64]point{}, map[float64]point{}
			for _, r := range rs {
				auc := num(r["roc_auc"])
				if math.IsNaN(auc) {
					continue
				}
				if auc < 0 || auc > 1 || num(r["labels"]) < 500 || num(r["log_loss"]) <= 0 {
					t.Errorf("accuracy row out of range: %v", r)
				}
				v := num(r["version"])
				versions[v] = true
				segments[r["segment"].(string)] = true
				if r["segment"].(string) != "" {
					continue
				}
				p := point{r["bucket"].(time.Time), auc}
				if b, ok := best[v]; !ok || auc > b.auc {
					best[v] = p
				}
				if w, ok := worst[v]; !ok || auc < w.auc {
					worst[v] = p
				}
				last[v] = p // rows are ordered by bucket
			}
			if len(versions) < 2 || !segments[""] || len(segments) < 4 {
				t.Errorf("accuracy reports for versions %v and segments %v, want >= 2 versions, all traffic and >= 3 segments", versions, segments)
			}
			latest := 0.0
			for v := range last {
				latest = max(latest, v)
			}
			t.Logf("v1 rolling AUC at best %.3f (%s), at worst %.3f (%s); v%v at last %.3f (demo summary: %.3f before the shift, %.3f after, %.3f after the retrain)",
				best[1].auc, best[1].at.Format("15:04"), worst[1].auc, worst[1].at.Format("15:04"), latest, last[latest].auc,
				sum.AUCBeforeShift, sum.AUCAfterShift, sum.AUCAfterRetrain)
			if !(best[1].auc >= 0.65) || !(worst[1].auc <= best[1].auc-0.1) || !worst[1].at.After(best[1].at) || !worst[1].at.After(shiftAt) {
				t.Errorf("v1 rolling AUC %.3f at %s, %.3f at %s: want >= 0.65, then at least 0.1 lower after the shift", best[1].auc, best[1].at, worst[1].auc, worst[1].at)
			}
			if latest < 2 || !(last[latest].auc >= worst[1].auc+0.1) {
				t.Errorf("latest version v%v's last rolling AUC %.3f: want a retrained version at least 0.1 above v1's worst %.3f", latest, last[latest].auc, worst[1].auc)
			}
		},
		"drift_by_feature_over_time": func(t *testing.T, rs []map[string]any) {
			features := map[string]bool{}
			// The judged statistic of v1 in windows wholly before the shift
			// (bucket over by 03:00) and wholly after it (windows_from
			// >= 03:00), for the features the shift moves: prices x1.8.
			type key struct{ feature, stat string }
			before, after := map[key][]float64{}, map[key][]float64{}
			for _, r := range rs {
				f, stat := r["feature"].(string), r["statistic"].(string)
				features[f] = true
				if v := num(r["mean_value"]); math.IsNaN(v) || v < 0 {
					t.Errorf("drift row with value %v: %v", v, r)
				}
				if num(r["version"]) != 1 || stat != r["judged_by"].(string) {
					continue
				}
				k := key{f, stat}
				switch b := r["bucket"].(time.Time); {
				case !b.Add(10 * time.Minute).After(shiftAt):
					before[k] = append(before[k], num(r["mean_value"]))
				case !r["windows_from"].(time.Time).Before(shiftAt):
					after[k] = append(after[k], num(r["mean_value"]))
				}
			}
			if len(features) < 10 || !features["score"] {
				t.Errorf("drift reports for %d features (%v), want every feature and the score", len(features), features)
			}
			for k := range after {
				t.Logf("v1 %s(%s): before the shift %v, after it %v", k.stat, k.feature, before[k], after[k])
			}
			for _, f := range []string{"session_mean_viewed_price", "session_cart_value", "score"} {
				var b, a []float64
				for k := range after {
					if k.feature == f {
						b, a = before[k], after[k]
					}
				}
				if len(b) == 0 || len(a) == 0 {
					t.Errorf("%s: %d buckets of v1 before the shift, %d after it", f, len(b), len(a))
					continue
				}
				if mb, ma := mean(b), mean(a); !(ma >= 2*mb) {
					t.Errorf("%s: mean drift %.3f before the shift, %.3f after it: want at least twice", f, mb, ma)
				}
			}
		},
		"drift_alerts_by_feature_hour": func(t *testing.T, rs []map[string]any) {
			if len(rs) == 0 || num(rs[0]["max_value"]) <= 0 {
				t.Errorf("no drift alerts by feature: %v", rs)
			}
		},
		"alert_timeline": func(t *testing.T, rs []map[string]any) {
			seen := map[string]bool{}
			var last time.Time
			for _, r := range rs {
				w := r["what"].(string)
				seen[strings.Fields(w)[0]+" "+strings.Fields(w)[1]] = true
				at := r["at"].(time.Time)
				if at.Before(last) {
					t.Errorf("timeline out of order at %v", r)
				}
				last = at
			}
			for _, want := range []string{"alert firing", "retrain requested", "champion moved"} {
				if !seen[want] {
					t.Errorf("timeline has no %q: %v", want, seen)
				}
			}
		},
		"label_lag_distribution": func(t *testing.T, rs []map[string]any) {
			by := map[string][]float64{}
			for _, r := range rs {
				by[r["reason"].(string)] = r["p50_p90_p99_minutes"].([]float64)
			}
			// A negative waits for the 30 min horizon (plus watermark
			// lateness); a purchase labels within it.
			if h := by[schemas.LabelReasonHorizon]; len(h) != 3 || h[0] < 29 || h[0] > 40 {
				t.Errorf("horizon label lag quantiles %v, want p50 of ~30 min", h)
			}
			if p := by[schemas.LabelReasonPurchase]; len(p) != 3 || p[0] <= 0 || p[2] > 31 {
				t.Errorf("purchase label lag quantiles %v, want within the 30 min horizon", p)
			}
		},
		"label_lag_histogram": func(t *testing.T, rs []map[string]any) {
			if len(rs) < 3 {
				t.Errorf("label lag histogram has %d buckets", len(rs))
			}
		},
		"model_versions": func(t *testing.T, rs []map[string]any) {
			if len(rs) < 2 || len(rs) != sum.ChampionVersion && len(rs) < sum.ChampionVersion {
				t.Errorf("%d versions in ClickHouse, the demo ended with champion v%d", len(rs), sum.ChampionVersion)
			}
		},
		"dead_letters_by_reason": func(t *testing.T, rs []map[string]any) {
			var n float64
			for _, r := range rs {
				n += num(r["records"])
			}
			if int(n) < sum.DLQ {
				t.Errorf("%v dead letters in ClickHouse, the demo saw %d", n, sum.DLQ)
			}
		},
	}
	var training namedQuery
	for _, q := range queries {
		if q.name == "training_set_of_version" {
			training = q
			continue
		}
		check, ok := checks[q.name]
		if !ok {
			t.Errorf("query %s has no check in this test", q.name)
			continue
		}
		start := time.Now()
		rs := rows(t, conn, q.sql)
		t.Logf("%-38s %4d rows in %6.1f ms", q.name, len(rs), float64(time.Since(start).Microseconds())/1000)
		t.Run(q.name, func(t *testing.T) { check(t, rs) })
	}
	if training.sql == "" {
		t.Fatal("queries.sql has no training_set_of_version")
	}

	// Every version's training set, reproduced from ClickHouse, hashes to
	// the fingerprint its trainer recorded.
	versions := rows(t, conn, "SELECT model, version, dataset_rows, dataset_sha256 FROM "+db+".model_versions FINAL ORDER BY version")
	reproduced := 0
	for _, v := range versions {
		if v["dataset_sha256"].(string) == "" {
			t.Errorf("version %v has no dataset fingerprint", v["version"])
			continue
		}
		start := time.Now()
		rs := rows(t, conn, training.sql, clickhouse.Named("model", v["model"].(string)), clickhouse.Named("version", v["version"]))
		elapsed := time.Since(start)
		labels := make([]schemas.Label, len(rs))
		for i, r := range rs {
			labels[i] = schemas.Label{EventID: r["event_id"].(string), Values: r["values"].([]float64), Label: int(num(r["label"])),
				EventTime: time.UnixMilli(int64(num(r["event_time_ms"])))}
		}
		fp := trainers.Fingerprint(labels, "clickhouse")
		t.Logf("training_set_of_version v%v: %d rows in %.1f ms, sha256 %s", v["version"], len(rs), float64(elapsed.Microseconds())/1000, fp.SHA256[:12])
		if fp.Rows != int(num(v["dataset_rows"])) || fp.SHA256 != v["dataset_sha256"].(string) {
			t.Errorf("version %v: reproduced %d rows with sha256 %s; the trainer recorded %v rows, %s",
				v["version"], fp.Rows, fp.SHA256, v["dataset_rows"], v["dataset_sha256"])
			continue
		}
		reproduced++
	}
	if reproduced < 2 {
		t.Errorf("reproduced %d training sets, want every version's (>= 2)", reproduced)
	}
}
