package monitors

import (
	"bufio"
	"bytes"
	stdjson "encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The golden files of `driftline drift`: testdata/drift/offline/
// reference.jsonl and current.jsonl (written by writeOfflineGoldenInputs)
// and expected.json, the report with statistics rounded to 6 decimals.
// Regenerate all three with
//
//	go test ./monitors -run TestOfflineGolden -update
const offlineGoldenDir = "../testdata/drift/offline"

func init() {
	// Another test file of the package may own -update; share it then.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files under testdata")
	}
}

func updateOfflineGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

// readOfflineString reads JSON lines from a string.
func readOfflineString(t testing.TB, s string, opts ReadOptions) *Table {
	t.Helper()
	tab, err := ReadColumns(strings.NewReader(s), opts)
	if err != nil {
		t.Fatalf("ReadColumns: %v", err)
	}
	return tab
}

func TestOfflineReadFormats(t *testing.T) {
	type col struct {
		name   string
		typ    ColumnType
		values []float64
		cats   []string // categories by value, one per non-null value
		nulls  int
	}
	cases := []struct {
		name   string
		input  string
		opts   ReadOptions
		format InputFormat
		rows   int
		cols   []col
	}{
		{
			name: "flat objects",
			input: `{"price": 9.5, "device": "mobile", "returning": true, "meta": {"a": 1}, "tags": [1, 2]}
{"price": -1e2, "device": "desktop", "returning": false, "meta": {"a": 2}, "tags": []}

{"device": "mobile", "price": null, "returning": true}
`,
			format: FormatObjects, rows: 3,
			cols: []col{
				{name: "price", typ: ColumnNumeric, values: []float64{9.5, -100}, nulls: 1},
				{name: "device", typ: ColumnCategorical, cats: []string{"mobile", "desktop", "mobile"}},
				{name: "returning", typ: ColumnCategorical, cats: []string{"true", "false", "true"}},
			},
		},
		{
			name:   "flat objects, features selected",
			input:  `{"a": 1, "b": "x", "c": 3}` + "\n" + `{"a": 2, "b": "y", "c": 4}`,
			opts:   ReadOptions{Names: []string{"c", "a"}},
			format: FormatObjects, rows: 2,
			cols: []col{
				{name: "c", typ: ColumnNumeric, values: []float64{3, 4}},
				{name: "a", typ: ColumnNumeric, values: []float64{1, 2}},
			},
		},
		{
			name:   "flat objects, escapes and CRLF",
			input:  "{\"caf\\u00e9\": \"a\\\"b\", \"n\": 1}\r\n{\"café\": \"a\\\"b\", \"n\": 2}\r\n",
			format: FormatObjects, rows: 2,
			cols: []col{
				{name: "café", typ: ColumnCategorical, cats: []string{`a"b`, `a"b`}},
				{name: "n", typ: ColumnNumeric, values: []float64{1, 2}},
			},
		},
		{
			name: "driftline records, names given",
			input: `{"model":"purchase_propensity","event_id":"e1","device":"mobile","values":[1.5,0,12]}
{"model":"purchase_propensity","event_id":"e2","device":"desktop","values":[2.5,1,null]}
`,
			opts:   ReadOptions{Names: []string{"cart_value", "is_mobile", "views"}},
			format: FormatRecords, rows: 2,
			cols: []col{
				{name: "cart_value", typ: ColumnNumeric, values: []float64{1.5, 2.5}},
				{name: "is_mobile", typ: ColumnNumeric, values: []float64{0, 1}},
				{name: "views", typ: ColumnNumeric, values: []float64{12}, nulls: 1},
			},
		},
		{
			name: "driftline labels, default names",
			input: `{"model":"m","version":1,"score":0.3,"values":[1,2],"label":1,"reason":"purchase"}
{"values":[3,4],"model":"m","version":1,"score":0.1,"label":0,"reason":"horizon"}
`,
			format: FormatRecords, rows: 2,
			cols: []col{
				{name: "value_0", typ: ColumnNumeric, values: []float64{1, 3}},
				{name: "value_1", typ: ColumnNumeric, values: []float64{2, 4}},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab := readOfflineString(t, tc.input, tc.opts)
			if tab.Format != tc.format || tab.Rows != tc.rows {
				t.Fatalf("format %s, %d rows; want %s, %d", tab.Format, tab.Rows, tc.format, tc.rows)
			}
			if len(tab.Columns) != len(tc.cols) {
				var names []string
				for _, c := range tab.Columns {
					names = append(names, c.Name)
				}
				t.Fatalf("columns %v, want %d", names, len(tc.cols))
			}
			for i, want := range tc.cols {
				c := tab.Columns[i]
				if c.Name != want.name || c.Type != want.typ || c.Nulls != want.nulls {
					t.Errorf("column %d: %s %s nulls %d; want %s %s nulls %d", i, c.Name, c.Type, c.Nulls, want.name, want.typ, want.nulls)
				}
				if want.typ == ColumnNumeric && !slices.Equal(c.Values, want.values) {
					t.Errorf("%s: values %v, want %v", c.Name, c.Values, want.values)
				}
				if want.typ == ColumnCategorical {
					var got []string
					for _, code := range c.Codes {
						got = append(got, c.Categories[code])
					}
					if !slices.Equal(got, want.cats) {
						t.Errorf("%s: categories %q, want %q", c.Name, got, want.cats)
					}
				}
			}
		})
	}
}

func TestOfflineMalformedLine(t *testing.T) {
	cases := []struct {
		name, input string
		opts        ReadOptions
		line        int
		msg         string
		is          error
	}{
		{"trailing comma", "{\"a\":1}\n{\"a\":2,}\n", ReadOptions{}, 2, "where an object key belongs", nil},
		{"missing colon after a blank line", "{\"a\":1}\n\n{\"a\" 2}\n", ReadOptions{}, 3, "where ':' belongs", nil},
		{"not an object", "{\"a\":1}\n[1,2]\n", ReadOptions{}, 2, "one JSON object", nil},
		{"two objects on a line", `{"a":1}{"a":2}`, ReadOptions{}, 1, "unexpected data after the object", nil},
		{"unterminated", "{\"a\":1}\n{\"a\":1", ReadOptions{}, 2, "unexpected end of line", nil},
		{"bad literal", "{\"a\":1}\n{\"a\":tru}\n", ReadOptions{}, 2, "invalid JSON", nil},
		{"leading zero", "{\"a\":01}\n", ReadOptions{}, 1, "where ',' or a closing bracket belongs", nil},
		{"repeated field", "{\"a\":1}\n{\"a\":1,\"b\":2,\"a\":3}\n", ReadOptions{}, 2, `duplicate field "a"`, nil},
		{"mixed types", "{\"a\":1}\n{\"a\":1}\n{\"a\":\"x\"}\n", ReadOptions{}, 3, `feature "a"`, ErrMixedTypes},
		{"number out of range", "{\"a\":1e999}\n", ReadOptions{}, 1, "cannot parse number 1e999", strconv.ErrRange},
		{"mismatched brackets", "{\"a\":[1}\n", ReadOptions{}, 1, "invalid JSON", nil},
		{"record with a short vector", "{\"values\":[1,2]}\n{\"values\":[1]}\n", ReadOptions{}, 2, "1 values, want 2", nil},
		{"record with a string value", "{\"values\":[1,\"x\"]}\n", ReadOptions{}, 1, `values[1] is "x"`, nil},
		{"record against names", "{\"values\":[1,2,3]}\n", ReadOptions{Names: []string{"a", "b"}}, 1, "3 values, want 2", nil},
		{"record without values", "{\"values\":[1]}\n{\"model\":\"m\"}\n", ReadOptions{}, 2, `no "values" array`, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadColumns(strings.NewReader(tc.input), tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("error %q: want a LineError on line %d", err, tc.line)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), fmt.Sprintf("line %d:", tc.line)) {
				t.Errorf("error %q: want it to name line %d and say %q", err, tc.line, tc.msg)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q: want errors.Is %v", err, tc.is)
			}
		})
	}
	// A selected feature absent from the input.
	if _, err := ReadColumns(strings.NewReader(`{"a":1}`), ReadOptions{Names: []string{"a", "b"}}); err == nil || !strings.Contains(err.Error(), "b not in the input") {
		t.Errorf("missing selected feature: error %v", err)
	}
	// A line longer than the read buffer is read whole.
	long := `{"pad":"` + strings.Repeat("x", 3*offlineReadBufferSize) + `","a":1}` + "\n{\"pad\":\"y\",\"a\":2,}\n"
	_, err := ReadColumns(strings.NewReader(long), ReadOptions{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("after a long line: error %v, want line 2", err)
	}
}

// numericLines returns n flat JSON lines with one numeric feature "x"
// drawn by draw.
func numericLines(n int, draw func(i int) float64) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"x\":%s}\n", strconv.FormatFloat(draw(i), 'g', -1, 64))
	}
	return b.String()
}

// categoryLines returns n flat JSON lines with one categorical feature "x".
func categoryLines(n int, cats ...string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "{\"x\":%q}\n", cats[i%len(cats)])
	}
	return b.String()
}

// compareOfflineFeature compares the single feature "x" of two inputs.
func compareOfflineFeature(t *testing.T, ref, cur string, cfg OfflineConfig) FeatureDrift {
	t.Helper()
	rep, err := CompareTables(readOfflineString(t, ref, ReadOptions{}), readOfflineString(t, cur, ReadOptions{}), cfg)
	if err != nil {
		t.Fatalf("CompareTables: %v", err)
	}
	if len(rep.Features) != 1 {
		t.Fatalf("%d features", len(rep.Features))
	}
	return rep.Features[0]
}

// TestOfflineFastPathParity reads random lines, valid and broken, with
// the fast path and with the Tokenizer alone: the tables, or the errors,
// must be the same.
func TestOfflineFastPathParity(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	space := func() string { return pick("", "", "", " ", "\t", "  ") }
	number := func() string {
		switch r.IntN(6) {
		case 0:
			return strconv.Itoa(r.IntN(2000) - 1000)
		case 1:
			return strconv.FormatFloat(r.NormFloat64(), 'g', r.IntN(17)+1, 64)
		case 2:
			return strconv.FormatFloat(r.NormFloat64()*1e6, 'f', r.IntN(12), 64)
		case 3:
			return strconv.FormatFloat(math.Ldexp(r.Float64(), r.IntN(200)-100), 'e', r.IntN(20), 64)
		case 4:
			return pick("0", "-0", "-0.0", "1E+2", "12345678901234567890", "0.1000000000000000055511151231257827")
		}
		return strconv.FormatFloat(r.NormFloat64(), 'g', 7, 64)
	}
	value := func(key string) string {
		switch key {
		case "s", "b":
			return pick(`"mobile"`, `"desktop"`, `"mobile"`, `"desktop"`, `"tab\"let"`, `"caf\u00e9"`, `"café"`, `null`, `"a b"`)
		case "flag":
			return pick("true", "false", "null")
		case "nested":
			return pick(`{"a":1}`, `[1,"x",{"y":null}]`, `[]`, `{}`)
		}
		if r.IntN(10) == 0 {
			return "null"
		}
		return number()
	}
	line := func(records bool) string {
		keys := []string{"x", "y", "z", "s", "flag"}
		if r.IntN(4) == 0 { // outside the fast path's subset
			keys = append(keys, "nested")
		}
		if r.IntN(4) == 0 {
			r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		}
		var parts []string
		for _, k := range keys {
			if r.IntN(8) == 0 {
				continue // absent
			}
			parts = append(parts, space()+`"`+k+`"`+space()+":"+space()+value(k)+space())
		}
		if records {
			vals := make([]string, 3)
			for i := range vals {
				vals[i] = pick(number(), number(), "null")
			}
			parts = append(parts, `"values":[`+space()+strings.Join(vals, space()+","+space())+"]")
		}
		l := space() + "{" + strings.Join(parts, ",") + "}" + space()
		if r.IntN(5) == 0 { // break it, or not
			i := r.IntN(len(l))
			switch r.IntN(3) {
			case 0:
				l = l[:i] + l[i+1:]
			case 1:
				l = l[:i] + pick(",", "}", "{", `"`, ":", "1", "-", ".", "e", "\\", " ", "\x01", "]") + l[i:]
			default:
				l = l[:i] + l[i:] + l[i:]
			}
		}
		return l
	}
	for trial := range 5000 {
		records := trial%3 == 2
		var b strings.Builder
		for range 1 + r.IntN(6) {
			b.WriteString(line(records))
			b.WriteString(pick("\n", "\n", "\r\n", "\n\n"))
		}
		in := b.String()
		fast, ferr := ReadColumns(strings.NewReader(in), ReadOptions{})
		slow, serr := ReadColumns(strings.NewReader(in), ReadOptions{tokenizerOnly: true})
		if (ferr == nil) != (serr == nil) || (ferr != nil && ferr.Error() != serr.Error()) {
			t.Fatalf("input %q:\nfast path: %v\ntokenizer: %v", in, ferr, serr)
		}
		if ferr != nil {
			continue
		}
		if d := offlineTableDiff(fast, slow); d != "" {
			t.Fatalf("input %q: %s", in, d)
		}
	}
}

// offlineTableDiff describes how a and b differ, "" when they do not.
func offlineTableDiff(a, b *Table) string {
	if a.Rows != b.Rows || a.Format != b.Format || len(a.Columns) != len(b.Columns) {
		return fmt.Sprintf("rows %d/%d, format %s/%s, %d/%d columns", a.Rows, b.Rows, a.Format, b.Format, len(a.Columns), len(b.Columns))
	}
	for i, ca := range a.Columns {
		cb := b.Columns[i]
		same := ca.Name == cb.Name && ca.Type == cb.Type && ca.Nulls == cb.Nulls &&
			slices.Equal(ca.Codes, cb.Codes) && slices.Equal(ca.Categories, cb.Categories) &&
			slices.EqualFunc(ca.Values, cb.Values, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
		if !same {
			return fmt.Sprintf("column %d: %+v\nvs %+v", i, *ca, *cb)
		}
	}
	return ""
}

func TestOfflineMethodChoice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	normal := func(int) float64 { return r.NormFloat64() }
	cases := []struct {
		name     string
		ref, cur string
		method   Method
		typ      ColumnType
	}{
		{"numeric, 1000 reference rows: ks", numericLines(1000, normal), numericLines(500, normal), MethodKS, ColumnNumeric},
		{"numeric, 1001 reference rows: wasserstein", numericLines(1001, normal), numericLines(500, normal), MethodWasserstein, ColumnNumeric},
		{"numeric with 5 values, small: chisquare", numericLines(300, func(i int) float64 { return float64(i % 5) }), numericLines(300, func(i int) float64 { return float64(i % 4) }), MethodChiSquare, ColumnNumeric},
		{"numeric with 6 values in both together: ks", numericLines(300, func(i int) float64 { return float64(i % 5) }), numericLines(300, func(i int) float64 { return float64(i%5 + 1) }), MethodKS, ColumnNumeric},
		{"numeric 0/1, small: z", numericLines(300, func(i int) float64 { return float64(i % 2) }), numericLines(300, func(i int) float64 { return float64(i % 3 % 2) }), MethodZ, ColumnNumeric},
		{"numeric with 5 values, large: jensenshannon", numericLines(2000, func(i int) float64 { return float64(i % 5) }), numericLines(300, func(i int) float64 { return float64(i % 5) }), MethodJensenShannon, ColumnNumeric},
		{"categorical, small: chisquare", categoryLines(1000, "a", "b", "c"), categoryLines(300, "a", "b", "c"), MethodChiSquare, ColumnCategorical},
		{"categorical with 2 values, small: z", categoryLines(500, "yes", "no"), categoryLines(300, "no", "yes", "yes"), MethodZ, ColumnCategorical},
		{"boolean, small: z", strings.Repeat("{\"x\":true}\n{\"x\":false}\n", 100), strings.Repeat("{\"x\":true}\n", 50), MethodZ, ColumnCategorical},
		{"categorical, large: jensenshannon", categoryLines(1001, "a", "b", "c"), categoryLines(300, "a", "b"), MethodJensenShannon, ColumnCategorical},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := compareOfflineFeature(t, tc.ref, tc.cur, OfflineConfig{})
			if f.Method != tc.method || f.Type != tc.typ {
				t.Fatalf("%s %s, want %s %s", f.Type, f.Method, tc.typ, tc.method)
			}
			if f.Threshold != tc.method.DefaultThreshold() {
				t.Errorf("threshold %g", f.Threshold)
			}
			if math.IsNaN(f.Statistic) || (tc.method.HasPValue() == math.IsNaN(f.PValue)) {
				t.Errorf("statistic %g, p-value %g", f.Statistic, f.PValue)
			}
		})
	}
}

// TestOfflineVerdicts checks each default method's value against a direct
// call and its verdict on a clear shift and on none.
func TestOfflineVerdicts(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	draw := func(n int, mu float64) ([]float64, string) {
		x := make([]float64, n)
		for i := range x {
			x[i] = math.Round((mu+r.NormFloat64())*1e6) / 1e6
		}
		return x, numericLines(n, func(i int) float64 { return x[i] })
	}
	ref, refLines := draw(800, 0)
	same, sameLines := draw(600, 0)
	shifted, shiftedLines := draw(600, 0.5)
	bigRef, bigRefLines := draw(5000, 0)
	bigShifted, bigShiftedLines := draw(3000, 0.5)

	f := compareOfflineFeature(t, refLines, sameLines, OfflineConfig{})
	d, p := KS(ref, same)
	if f.Method != MethodKS || f.Statistic != d || f.PValue != p || f.Drift {
		t.Errorf("ks, no shift: %+v; KS gives %g, %g", f, d, p)
	}
	f = compareOfflineFeature(t, refLines, shiftedLines, OfflineConfig{})
	d, p = KS(ref, shifted)
	if f.Statistic != d || f.PValue != p || !f.Drift || !(p < 1e-6) {
		t.Errorf("ks, shift: %+v; KS gives %g, %g", f, d, p)
	}
	f = compareOfflineFeature(t, bigRefLines, bigShiftedLines, OfflineConfig{})
	if w := NormalizedWasserstein(bigRef, bigShifted); f.Method != MethodWasserstein || f.Statistic != w || !f.Drift || !math.IsNaN(f.PValue) {
		t.Errorf("wasserstein, shift: %+v; NormalizedWasserstein gives %g", f, w)
	}
	f = compareOfflineFeature(t, bigRefLines, sameLines, OfflineConfig{})
	if w := NormalizedWasserstein(bigRef, same); f.Statistic != w || f.Drift {
		t.Errorf("wasserstein, no shift: %+v; NormalizedWasserstein gives %g", f, w)
	}
}

func TestOfflineOverrides(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ref := make([]float64, 2000)
	cur := make([]float64, 1500)
	for i := range ref {
		ref[i] = math.Round(r.NormFloat64()*1e4) / 1e4
	}
	for i := range cur {
		cur[i] = math.Round((0.3+r.NormFloat64())*1e4) / 1e4
	}
	refLines := numericLines(len(ref), func(i int) float64 { return ref[i] })
	curLines := numericLines(len(cur), func(i int) float64 { return cur[i] })
	// The decile bins of the reference, as the online monitor's profiles.
	refShares, curShares := decileSharesByHand(ref, cur)
	d, p := KS(ref, cur)
	cases := []struct {
		method    Method
		statistic float64
		pValue    float64
	}{
		{MethodKS, d, p},
		{MethodWasserstein, NormalizedWasserstein(ref, cur), math.NaN()},
		{MethodPSI, PSI(refShares, curShares), math.NaN()},
		{MethodJensenShannon, JensenShannon(refShares, curShares), math.NaN()},
	}
	for _, tc := range cases {
		t.Run(string(tc.method), func(t *testing.T) {
			f := compareOfflineFeature(t, refLines, curLines, OfflineConfig{Methods: map[string]Method{"x": tc.method}})
			if f.Method != tc.method || f.Threshold != tc.method.DefaultThreshold() {
				t.Fatalf("method %s threshold %g", f.Method, f.Threshold)
			}
			if !closeRelative(f.Statistic, tc.statistic, 1e-12) || !(closeRelative(f.PValue, tc.pValue, 1e-12) || math.IsNaN(f.PValue) && math.IsNaN(tc.pValue)) {
				t.Errorf("statistic %g p %g, want %g p %g", f.Statistic, f.PValue, tc.statistic, tc.pValue)
			}
			if !f.Drift {
				t.Errorf("a shift of 0.3 sd over 2000 rows: no drift with %s (%g)", tc.method, f.Statistic)
			}
		})
	}

	cat := categoryLines(100, "a", "b", "c")
	t.Run("psi on categories", func(t *testing.T) {
		f := compareOfflineFeature(t, cat, categoryLines(90, "a", "b", "c"), OfflineConfig{Methods: map[string]Method{"x": MethodPSI}})
		if f.Method != MethodPSI || f.Statistic > 1e-3 || f.Drift {
			t.Errorf("%+v", f)
		}
	})
	errCases := []struct {
		name     string
		ref, cur string
		methods  map[string]Method
		msg      string
	}{
		{"ks on categories", cat, cat, map[string]Method{"x": MethodKS}, "categorical"},
		{"wasserstein on categories", cat, cat, map[string]Method{"x": MethodWasserstein}, "categorical"},
		{"unknown feature", cat, cat, map[string]Method{"y": MethodPSI}, `unknown feature "y"`},
		{"unknown method", cat, cat, map[string]Method{"x": "anderson"}, `unknown method "anderson"`},
		{"different features", `{"x":1,"y":2}`, `{"x":1}`, nil, "reference only [y]"},
		{"different types", `{"x":1}`, `{"x":"1"}`, nil, "numeric in the reference, categorical in the current"},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompareTables(readOfflineString(t, tc.ref, ReadOptions{}), readOfflineString(t, tc.cur, ReadOptions{}), OfflineConfig{Methods: tc.methods})
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.HasPrefix(err.Error(), "cannot compare") {
				t.Errorf("error %v, want one saying %q", err, tc.msg)
			}
		})
	}
}

// decileSharesByHand bins ref and cur at the reference's lower deciles
// v_(⌈j·n/10⌉), as internal/profile documents them, without using it.
func decileSharesByHand(ref, cur []float64) ([]float64, []float64) {
	s := slices.Sorted(slices.Values(ref))
	var edges []float64
	for j := 1; j < 10; j++ {
		e := s[(j*len(s)+9)/10-1]
		if e < s[len(s)-1] && (len(edges) == 0 || e > edges[len(edges)-1]) {
			edges = append(edges, e)
		}
	}
	share := func(x []float64) []float64 {
		out := make([]float64, len(edges)+1)
		for _, v := range x {
			b, _ := slices.BinarySearch(edges, v) // first edge >= v
			out[b]++
		}
		for i := range out {
			out[i] /= float64(len(x))
		}
		return out
	}
	return share(ref), share(cur)
}

func closeRelative(a, b, tol float64) bool {
	return a == b || math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

func TestOfflineParseMethods(t *testing.T) {
	m, err := ParseMethods(" price=psi, device = jensenshannon,,age=ks ")
	if err != nil || len(m) != 3 || m["price"] != MethodPSI || m["device"] != MethodJensenShannon || m["age"] != MethodKS {
		t.Fatalf("%v %v", m, err)
	}
	for _, bad := range []string{"price", "=ks", "price=mmd", "a=ks,a=psi"} {
		if _, err := ParseMethods(bad); err == nil {
			t.Errorf("ParseMethods(%q): no error", bad)
		}
	}
}

func TestOfflineNulls(t *testing.T) {
	ref := `{"x":1,"y":"a"}
{"x":null,"y":"b"}
{"y":"a"}
{"x":2,"y":null}
{"x":3}
{"x":4,"y":"b"}
{"x":5,"y":"a"}
{"x":6,"y":"b"}
`
	cur := `{"x":null,"y":"a"}
{"x":2,"y":"b"}
{"x":3,"y":"a"}
{"x":4,"y":"a"}
`
	rt, ct := readOfflineString(t, ref, ReadOptions{}), readOfflineString(t, cur, ReadOptions{})
	if x := rt.Column("x"); x.Nulls != 2 || x.Count() != 6 {
		t.Errorf("reference x: %d nulls, %d values", x.Nulls, x.Count())
	}
	if y := rt.Column("y"); y.Nulls != 2 || y.Count() != 6 {
		t.Errorf("reference y: %d nulls, %d values", y.Nulls, y.Count())
	}
	rep, err := CompareTables(rt, ct, OfflineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	x := rep.Features[0]
	d, p := KS([]float64{1, 2, 3, 4, 5, 6}, []float64{2, 3, 4})
	if x.ReferenceNulls != 2 || x.CurrentNulls != 1 || x.ReferenceCount != 6 || x.CurrentCount != 3 || x.Statistic != d || x.PValue != p {
		t.Errorf("x: %+v; want nulls 2/1 and KS of the non-null values %g %g", x, d, p)
	}

	// A feature null everywhere on one side has no statistic and does not
	// count in the share.
	rep, err = CompareTables(readOfflineString(t, "{\"x\":1,\"z\":null}\n{\"x\":2,\"z\":null}\n", ReadOptions{}),
		readOfflineString(t, "{\"x\":1,\"z\":5}\n{\"x\":9,\"z\":6}\n", ReadOptions{}), OfflineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	z := rep.Features[1]
	if !z.NoData() || z.Drift || z.Method != "" || z.Type != ColumnNumeric || rep.ComparedFeatures != 1 {
		t.Errorf("all-null feature: %+v, %d compared", z, rep.ComparedFeatures)
	}
	b, _ := rep.MarshalJSON()
	if !bytes.Contains(b, []byte(`{"name":"z","type":"numeric","method":null,"statistic":null,"p_value":null,"threshold":null,"drift":false`)) {
		t.Errorf("JSON of the all-null feature: %s", b)
	}
}

func TestOfflineNewCategory(t *testing.T) {
	ref := categoryLines(300, "mobile", "desktop", "tablet")
	cur := categoryLines(297, "mobile", "desktop", "tablet") + categoryLines(3, "watch")
	f := compareOfflineFeature(t, ref, cur, OfflineConfig{})
	if f.Method != MethodChiSquare || !math.IsInf(f.Statistic, 1) || f.PValue != 0 || !f.Drift {
		t.Errorf("chi-square with a category new in the current: %+v", f)
	}
	stat, p := ChiSquare([]float64{100, 100, 100, 0}, []float64{99, 99, 99, 3})
	if !math.IsInf(stat, 1) || p != 0 {
		t.Errorf("ChiSquare by hand: %g %g", stat, p)
	}
	// Jensen–Shannon (large reference) stays finite.
	ref = categoryLines(3000, "mobile", "desktop", "tablet")
	f = compareOfflineFeature(t, ref, cur, OfflineConfig{})
	want := JensenShannon([]float64{1000, 1000, 1000, 0}, []float64{99, 99, 99, 3})
	if f.Method != MethodJensenShannon || f.Statistic != want || f.Drift {
		t.Errorf("jensenshannon with a rare new category: %+v, want %g", f, want)
	}
	// The z-test takes the share of all but the smallest category, both
	// present only in the current.
	f = compareOfflineFeature(t, categoryLines(400, "b"), categoryLines(300, "b", "a"), OfflineConfig{})
	z, p := ZTest(400, 400, 150, 300)
	if f.Method != MethodZ || f.Statistic != z || f.PValue != p || !f.Drift {
		t.Errorf("z with a new category: %+v, want z %g p %g", f, z, p)
	}
}

func TestOfflineZTest(t *testing.T) {
	// scipy.stats.norm.sf(|z|)·2 on Evidently's proportions_diff_z_stat_ind
	// (SciPy 1.10.1).
	cases := []struct {
		k1, n1, k2, n2, z, p float64
	}{
		{120, 400, 105, 300, -1.4017532881009245, 0.16098893181251495},
		{10, 1000, 90, 1000, -8.207826816681234, 2.2522775605990274e-16},
		{3, 50, 3, 60, 0.22996655275194985, 0.8181177602398895},
	}
	for _, tc := range cases {
		z, p := ZTest(tc.k1, tc.n1, tc.k2, tc.n2)
		if !closeRelative(z, tc.z, 1e-12) || !closeRelative(p, tc.p, 1e-9) {
			t.Errorf("ZTest(%g/%g, %g/%g) = %g, %g; want %g, %g", tc.k1, tc.n1, tc.k2, tc.n2, z, p, tc.z, tc.p)
		}
	}
	if z, p := ZTest(5, 5, 7, 7); z != 0 || p != 1 {
		t.Errorf("all ones: %g %g", z, p)
	}
	if z, p := ZTest(0, 0, 1, 2); !math.IsNaN(z) || !math.IsNaN(p) {
		t.Errorf("empty: %g %g", z, p)
	}
}

func TestOfflineRadixSort(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var s floatSorter
	gens := map[string]func() float64{
		"normal": func() float64 { return r.NormFloat64() * 1e3 },
		"ties":   func() float64 { return float64(r.IntN(7) - 3) },
		"specials": func() float64 {
			return []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), 5e-324, -5e-324, math.MaxFloat64}[r.IntN(7)]
		},
		"wide": func() float64 { return math.Ldexp(r.Float64()-0.5, r.IntN(2000)-1000) },
	}
	for name, gen := range gens {
		for _, n := range []int{0, 1, 100, radixMinLen, 50000} {
			x := make([]float64, n)
			for i := range x {
				x[i] = gen()
			}
			want := slices.Clone(x)
			slices.Sort(want)
			s.sort(x)
			for i := range x {
				// slices.Sort leaves -0 and +0 in any order; the radix sort
				// (from radixMinLen values) puts -0 first.
				if x[i] != want[i] || (n >= radixMinLen && i > 0 && math.Signbit(x[i]) && !math.Signbit(x[i-1]) && x[i] == 0 && x[i-1] == 0) {
					t.Fatalf("%s n=%d: x[%d] = %g, want %g", name, n, i, x[i], want[i])
				}
			}
		}
	}
}

func TestOfflineParseNumber(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	check := func(s string) {
		t.Helper()
		want, werr := strconv.ParseFloat(s, 64)
		got, err := parseJSONNumber([]byte(s))
		if (err != nil) != (werr != nil) || (err == nil && math.Float64bits(got) != math.Float64bits(want)) {
			t.Fatalf("parseJSONNumber(%q) = %v, %v; strconv: %v, %v", s, got, err, want, werr)
		}
	}
	for _, s := range []string{"0", "-0", "1", "-1", "0.1", "1e22", "1e23", "9007199254740993", "123456789012345678901234",
		"0.000000000000000000001", "1.7976931348623157e308", "1e-400", "4.9e-324", "2.5E+3", "-7.25e-3", "1e999", "100000000000000000000000e-10"} {
		check(s)
	}
	for range 200000 {
		f := math.Ldexp(r.Float64()-0.5, r.IntN(200)-100)
		check(strconv.FormatFloat(f, 'g', r.IntN(18)+1, 64))
		check(strconv.FormatFloat(f, 'f', r.IntN(20), 64))
		check(strconv.FormatFloat(f, 'e', r.IntN(17), 64))
	}
}

// TestOfflineReadAllocs guards the reader's hot path: allocations do not
// grow with the rows (only with columns and categories).
func TestOfflineReadAllocs(t *testing.T) {
	lines := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "{\"a\":%d.5,\"b\":\"%c\",\"c\":true,\"d\":{\"e\":[1,2]},\"v\":null}\n", i, 'a'+i%3)
		}
		return b.String()
	}
	small, large := lines(1000), lines(20000)
	// Same preallocation for both, so only per-row allocations differ.
	opts := ReadOptions{SizeHint: int64(len(large))}
	count := func(s string) float64 {
		return testing.AllocsPerRun(5, func() {
			if _, err := ReadColumns(strings.NewReader(s), opts); err != nil {
				t.Fatal(err)
			}
		})
	}
	a, b := count(small), count(large)
	if b > a+2 {
		t.Errorf("reading 20000 rows allocates %.0f times, 1000 rows %.0f: allocations per row", b, a)
	}
	t.Logf("allocations: %.0f for 1000 rows, %.0f for 20000", a, b)
}

// writeOfflineGoldenInputs writes the golden inputs: a reference of 400
// rows and a current of 300 with flat objects of prices (numeric, shifted
// by 0.8 sd in the current), ages, session lengths (10% null, 10% absent),
// item counts (1-4: numeric compared as categorical), devices (categorical),
// a returning flag (boolean) and a nested object and array (ignored).
func writeOfflineGoldenInputs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 8))
	devices := []string{"mobile", "desktop", "tablet"}
	write := func(name string, rows int, priceShift float64) {
		var b bytes.Buffer
		for range rows {
			fmt.Fprintf(&b, `{"price":%.2f,"age":%d`, 50+priceShift+10*r.NormFloat64(), 18+r.IntN(60))
			switch k := r.IntN(10); {
			case k == 0: // absent
			case k == 1:
				b.WriteString(`,"session_seconds":null`)
			default:
				fmt.Fprintf(&b, `,"session_seconds":%.1f`, math.Exp(4+0.8*r.NormFloat64()))
			}
			fmt.Fprintf(&b, `,"items":%d,"device":%q,"returning":%t,"meta":{"ua":"x"},"tags":["a"]}`+"\n",
				1+r.IntN(4), devices[r.IntN(3)], r.IntN(3) == 0)
		}
		if err := os.WriteFile(filepath.Join(offlineGoldenDir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(offlineGoldenDir, 0o755); err != nil {
		t.Fatal(err)
	}
	write("reference.jsonl", 400, 0)
	write("current.jsonl", 300, 8) // price: +0.8 sd; everything else as before
}

// readGoldenTables reads the golden inputs.
func readGoldenTables(t *testing.T) (*Table, *Table) {
	t.Helper()
	read := func(name string) *Table {
		f, err := os.Open(filepath.Join(offlineGoldenDir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		tab, err := ReadColumns(f, ReadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	return read("reference.jsonl"), read("current.jsonl")
}

func roundTo6(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	return math.Round(x*1e6) / 1e6
}

func TestOfflineGolden(t *testing.T) {
	if updateOfflineGolden() {
		writeOfflineGoldenInputs(t)
	}
	ref, cur := readGoldenTables(t)
	rep, err := CompareTables(ref, cur, OfflineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rounded := *rep
	rounded.Features = slices.Clone(rep.Features)
	for i := range rounded.Features {
		rounded.Features[i].Statistic = roundTo6(rounded.Features[i].Statistic)
		rounded.Features[i].PValue = roundTo6(rounded.Features[i].PValue)
	}
	raw, err := rounded.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := stdjson.Indent(&got, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	got.WriteByte('\n')
	path := filepath.Join(offlineGoldenDir, "expected.json")
	if updateOfflineGolden() {
		if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Errorf("report differs from %s (rerun with -update if intended):\n%s", path, got.Bytes())
	}

	// The fixture says what it is meant to: only the price moved.
	wantMethods := map[string]Method{"price": MethodKS, "age": MethodKS, "session_seconds": MethodKS,
		"items": MethodChiSquare, "device": MethodChiSquare, "returning": MethodZ}
	if len(rep.Features) != len(wantMethods) {
		t.Fatalf("%d features, want %d", len(rep.Features), len(wantMethods))
	}
	for _, f := range rep.Features {
		if f.Method != wantMethods[f.Name] || f.Drift != (f.Name == "price") {
			t.Errorf("%s: %s drift=%v", f.Name, f.Method, f.Drift)
		}
	}
	if s := rep.Features[2]; s.Name != "session_seconds" || s.ReferenceNulls == 0 || s.CurrentNulls == 0 {
		t.Errorf("session_seconds should have nulls: %+v", s)
	}
	if rep.DriftedFeatures != 1 || rep.DatasetDrift {
		t.Errorf("%d drifted, dataset drift %v", rep.DriftedFeatures, rep.DatasetDrift)
	}
}

// TestOfflineGoldenMatchesDirect recomputes every statistic of the golden
// report by calling the statistic on the raw columns, and checks the
// golden file holds those values rounded.
func TestOfflineGoldenMatchesDirect(t *testing.T) {
	ref, cur := readGoldenTables(t)
	// Unsorted copies of the columns before CompareTables sorts them.
	raw := map[string][2][]float64{}
	for _, c := range ref.Columns {
		if c.Type == ColumnNumeric {
			raw[c.Name] = [2][]float64{slices.Clone(c.Values), slices.Clone(cur.Column(c.Name).Values)}
		}
	}
	counts := func(name string) ([]float64, []float64, []string) {
		rc, cc := ref.Column(name), cur.Column(name)
		var keys []string
		idx := map[string]int{}
		add := func(c *Column, which int, out *[2][]float64) {
			for _, code := range c.Codes {
				k := c.Categories[code]
				if _, ok := idx[k]; !ok {
					idx[k] = len(keys)
					keys = append(keys, k)
					out[0], out[1] = append(out[0], 0), append(out[1], 0)
				}
				out[which][idx[k]]++
			}
		}
		var out [2][]float64
		add(rc, 0, &out)
		add(cc, 1, &out)
		return out[0], out[1], keys
	}
	valueCounts := func(a, b []float64) ([]float64, []float64) {
		m := map[float64][2]float64{}
		for _, v := range a {
			e := m[v]
			e[0]++
			m[v] = e
		}
		for _, v := range b {
			e := m[v]
			e[1]++
			m[v] = e
		}
		keys := slices.Sorted(func(yield func(float64) bool) {
			for k := range m {
				if !yield(k) {
					return
				}
			}
		})
		var x, y []float64
		for _, k := range keys {
			x, y = append(x, m[k][0]), append(y, m[k][1])
		}
		return x, y
	}

	rep, err := CompareTables(ref, cur, OfflineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Features []struct {
			Name      string   `json:"name"`
			Statistic *float64 `json:"statistic"`
			PValue    *float64 `json:"p_value"`
		} `json:"features"`
	}
	b, err := os.ReadFile(filepath.Join(offlineGoldenDir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := stdjson.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	for i, f := range rep.Features {
		var stat, p float64
		switch name := f.Name; f.Method {
		case MethodKS:
			stat, p = KS(raw[name][0], raw[name][1])
		case MethodChiSquare:
			if f.Type == ColumnNumeric {
				x, y := valueCounts(raw[name][0], raw[name][1])
				stat, p = ChiSquare(x, y)
			} else {
				x, y, _ := counts(name)
				stat, p = ChiSquare(x, y)
			}
		case MethodZ:
			x, y, keys := counts(name)
			// The share of everything but the smallest category.
			first := slices.Index(keys, slices.Min(keys))
			stat, p = ZTest(sumCounts(x)-x[first], sumCounts(x), sumCounts(y)-y[first], sumCounts(y))
		default:
			t.Fatalf("%s: unexpected method %s", name, f.Method)
		}
		if f.Statistic != stat || f.PValue != p {
			t.Errorf("%s: report %v, %v; %s directly %v, %v", f.Name, f.Statistic, f.PValue, f.Method, stat, p)
		}
		g := golden.Features[i]
		if g.Name != f.Name || g.Statistic == nil || *g.Statistic != roundTo6(stat) || g.PValue == nil || *g.PValue != roundTo6(p) {
			t.Errorf("%s: golden %v; want statistic %v, p-value %v", f.Name, g, roundTo6(stat), roundTo6(p))
		}
	}
}

func sumCounts(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

// The speed of `driftline drift`: flat files of numeric features, written
// to each benchmark's temporary directory. DRIFTLINE_DRIFT_ROWS sets the
// rows (default 100000) and DRIFTLINE_DRIFT_FEATURES the features (default
// 50); DRIFTLINE_DRIFT_DIR writes them there once and reuses them, to time
// the built command on the same files. For the 1M x 50 figure:
//
//	DRIFTLINE_DRIFT_ROWS=1000000 DRIFTLINE_DRIFT_DIR=/tmp/drift1m \
//	  go test ./monitors -run '^$' -bench 'ReadColumns|OfflineCompare|BaselineMapReader' -benchtime 1x -timeout 30m
//	go build -o /tmp/driftline ./cmd/driftline
//	time /tmp/driftline drift --reference /tmp/drift1m/reference-1000000x50.jsonl --current /tmp/drift1m/current-1000000x50.jsonl
func offlineBenchSize() (rows, features int) {
	rows, features = 100000, 50
	if v, err := strconv.Atoi(os.Getenv("DRIFTLINE_DRIFT_ROWS")); err == nil && v > 0 {
		rows = v
	}
	if v, err := strconv.Atoi(os.Getenv("DRIFTLINE_DRIFT_FEATURES")); err == nil && v > 0 {
		features = v
	}
	return rows, features
}

// offlineBenchFiles returns a reference and a current file of rows flat
// JSON objects with numeric features f00, f01, …: values of N(0, 1) with
// 7 significant digits (float32 precision, as feature exports often
// have); in the current, every fifth feature is shifted by 0.2 sd, so 20%
// of the features drift and the dataset does not. They are written to
// tb.TempDir(), or once to DRIFTLINE_DRIFT_DIR and reused from there.
func offlineBenchFiles(tb testing.TB) (ref, cur string) {
	rows, feats := offlineBenchSize()
	dir := os.Getenv("DRIFTLINE_DRIFT_DIR")
	if dir == "" {
		dir = tb.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	ref = filepath.Join(dir, fmt.Sprintf("reference-%dx%d.jsonl", rows, feats))
	cur = filepath.Join(dir, fmt.Sprintf("current-%dx%d.jsonl", rows, feats))
	var wg sync.WaitGroup
	for i, path := range []string{ref, cur} {
		if _, err := os.Stat(path); err == nil {
			continue
		}
		wg.Go(func() {
			if err := writeNumericFile(path, rows, feats, uint64(i+1), i == 1); err != nil {
				tb.Error(err)
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	return ref, cur
}

// writeNumericFile writes the files of offlineBenchFiles.
func writeNumericFile(path string, rows, feats int, seed uint64, shift bool) error {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(seed, 42))
	var b []byte
	for range rows {
		b = append(b[:0], '{')
		for j := range feats {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"', 'f', byte('0'+j/10%10), byte('0'+j%10), '"', ':')
			v := r.NormFloat64()
			if shift && j%5 == 0 {
				v += 0.2
			}
			b = strconv.AppendFloat(b, v, 'g', 7, 64)
		}
		b = append(b, '}', '\n')
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func BenchmarkReadColumns(b *testing.B) { benchReadColumns(b, ReadOptions{}) }

// BenchmarkReadColumnsTokenizer reads with the Tokenizer alone, no fast
// path.
func BenchmarkReadColumnsTokenizer(b *testing.B) {
	benchReadColumns(b, ReadOptions{tokenizerOnly: true})
}

func benchReadColumns(b *testing.B, opts ReadOptions) {
	ref, _ := offlineBenchFiles(b)
	fi, err := os.Stat(ref)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fi.Size())
	b.ReportAllocs()
	b.ResetTimer()
	rows := 0
	for b.Loop() {
		f, err := os.Open(ref)
		if err != nil {
			b.Fatal(err)
		}
		tab, err := ReadColumns(f, opts)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		rows += tab.Rows
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkOfflineCompare is what `driftline drift` does: both files read
// concurrently, then CompareTables.
func BenchmarkOfflineCompare(b *testing.B) {
	ref, cur := offlineBenchFiles(b)
	benchOfflineCompare(b, ref, cur, func(path string) (*Table, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ReadColumns(f, ReadOptions{})
	})
}

// BenchmarkBaselineMapReader is the same comparison with the naive reader:
// encoding/json's Unmarshal of each line into a map[string]any.
func BenchmarkBaselineMapReader(b *testing.B) {
	ref, cur := offlineBenchFiles(b)
	benchOfflineCompare(b, ref, cur, readMapBaseline)
}

func benchOfflineCompare(b *testing.B, ref, cur string, read func(string) (*Table, error)) {
	b.ReportAllocs()
	rows := 0
	for b.Loop() {
		var tabs [2]*Table
		var errs [2]error
		var wg sync.WaitGroup
		for i, path := range []string{ref, cur} {
			wg.Go(func() { tabs[i], errs[i] = read(path) })
		}
		wg.Wait()
		if err := errors.Join(errs[:]...); err != nil {
			b.Fatal(err)
		}
		rep, err := CompareTables(tabs[0], tabs[1], OfflineConfig{})
		if err != nil {
			b.Fatal(err)
		}
		rows += rep.RowsReference + rep.RowsCurrent
		if rep.DriftedFeatures != (len(rep.Features)+4)/5 {
			b.Fatalf("%d of %d features drifted, want every fifth", rep.DriftedFeatures, len(rep.Features))
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/compare")
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// readMapBaseline reads JSON lines the naive way, into the same Table.
func readMapBaseline(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	t := &Table{Format: FormatObjects}
	cols := map[string]*Column{}
	for sc.Scan() {
		var m map[string]any
		if err := stdjson.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("line %d: %w", t.Rows+1, err)
		}
		for k, v := range m {
			c := cols[k]
			if c == nil {
				c = &Column{Name: k, index: map[string]int32{}}
				cols[k] = c
				t.Columns = append(t.Columns, c)
			}
			switch v := v.(type) {
			case float64:
				c.Type = ColumnNumeric
				c.Values = append(c.Values, v)
			case string:
				c.Type = ColumnCategorical
				code, ok := c.index[v]
				if !ok {
					code = int32(len(c.Categories))
					c.index[v] = code
					c.Categories = append(c.Categories, v)
				}
				c.Codes = append(c.Codes, code)
			}
		}
		t.Rows++
	}
	slices.SortFunc(t.Columns, func(a, b *Column) int { return strings.Compare(a.Name, b.Name) })
	return t, sc.Err()
}

// TestOfflineCompareSmallBench runs the benchmark path once on a small size
// so that it stays correct; the timing is the benchmarks'.
func TestOfflineCompareSmallBench(t *testing.T) {
	dir := t.TempDir()
	ref, cur := filepath.Join(dir, "r.jsonl"), filepath.Join(dir, "c.jsonl")
	if err := writeNumericFile(ref, 3000, 10, 1, false); err != nil {
		t.Fatal(err)
	}
	if err := writeNumericFile(cur, 3000, 10, 2, true); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	read := func(path string, reader func(string) (*Table, error)) *Table {
		tab, err := reader(path)
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	fast := func(path string) (*Table, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ReadColumns(f, ReadOptions{})
	}
	a, err := CompareTables(read(ref, fast), read(cur, fast), OfflineConfig{Workers: runtime.GOMAXPROCS(0)})
	if err != nil {
		t.Fatal(err)
	}
	b, err := CompareTables(read(ref, readMapBaseline), read(cur, readMapBaseline), OfflineConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range a.Features {
		fa, fb := a.Features[i], b.Features[i]
		if fa.Name != fb.Name || fa.Statistic != fb.Statistic || fa.Drift != fb.Drift {
			t.Errorf("fast %+v, baseline %+v", fa, fb)
		}
	}
	if a.DriftedFeatures != 2 {
		t.Errorf("%d drifted, want 2 (f00, f05)", a.DriftedFeatures)
	}
	t.Logf("3000 x 10 twice, both readers: %v", time.Since(start))
}
