package schemas

import (
	"bytes"
	stdjson "encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the generated files under testdata/contract")

// The kcat fixtures are a small, coherent storefront stream for the
// end-to-end test that produces with a third-party client:
//
//	kcat -P -b BROKER -t storefront.cart -K'\t' -l testdata/contract/kcat_cart.txt
//
// Each line is user_id<TAB>record. Six users walk 30 sessions through
// page_view, product_view, add_to_cart and checkout_started, and two
// sessions in three end in a purchase; event time increases from
// 2026-11-23T10:00:00Z across all three files. A few invalid records are
// mixed in. kcat_expected.json says what the pipeline must make of it; it is
// computed with the Decoder (TestKcatExpectedCounts recomputes it from the
// files, so the two cannot drift). Regenerate with
//
//	go test ./schemas -run Kcat -update
const kcatDir = "../testdata/contract"

var kcatFiles = []struct{ topic, file string }{
	{TopicClickstream, "kcat_clickstream.txt"},
	{TopicCart, "kcat_cart.txt"},
	{TopicTransactions, "kcat_transactions.txt"},
}

// kcatExpected is kcat_expected.json.
type kcatExpected struct {
	// CartEventsScored counts the valid add_to_cart and checkout_started
	// records: one feature vector (and, with a champion, one prediction)
	// each.
	CartEventsScored int `json:"cart_events_scored"`
	// Invalid counts the records that must end up on driftline.dlq.
	Invalid int `json:"invalid"`
	// InvalidReasons are their driftline.reason headers, sorted (the three
	// topics are produced concurrently, so DLQ order is not fixed).
	InvalidReasons []string `json:"invalid_reasons"`
	// ValidByTopic counts the valid records per input topic.
	ValidByTopic map[string]int `json:"valid_by_topic"`
	// Purchases counts the valid purchase records (each closes a session
	// with positive labels for its cart events).
	Purchases int `json:"purchases"`
	// Users and Sessions describe the stream.
	Users    int `json:"users"`
	Sessions int `json:"sessions"`
	// FirstEventTime and LastEventTime bound the valid events' times.
	FirstEventTime string `json:"first_event_time"`
	LastEventTime  string `json:"last_event_time"`
}

// generateKcat builds the three files' lines, keyed by topic.
func generateKcat() map[string][]string {
	const users, sessions = 6, 30
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	devices := []string{"mobile", "desktop", "mobile", "tablet", "desktop", "mobile"}
	countries := []string{"DE", "FR", "DE", "NL", "US", "DE"}
	referrers := []string{"google", "direct", "newsletter", "instagram", "direct"}
	products := []struct {
		id, category string
		price        float64
	}{
		{"sku-1001", "shoes", 89.9}, {"sku-1002", "shoes", 129}, {"sku-2001", "shirts", 24.5},
		{"sku-2002", "shirts", 19.99}, {"sku-3001", "bags", 59}, {"sku-4001", "socks", 7.5},
	}

	out := map[string][]string{}
	var buf []byte
	emit := func(e *Event) {
		buf = e.AppendJSON(buf[:0])
		out[TopicOf(e.Type)] = append(out[TopicOf(e.Type)], e.UserID+"\t"+string(buf))
	}
	raw := func(topic, key, record string) { out[topic] = append(out[topic], key+"\t"+record) }

	for k := range sessions {
		user := fmt.Sprintf("u-%04d", k%users+1)
		session := fmt.Sprintf("s-%04d-%02d", k%users+1, k/users+1)
		t := start.Add(time.Duration(k) * 2 * time.Minute)
		n := 0
		ev := func(typ string) Event {
			e := NewEvent()
			n++
			e.EventID = fmt.Sprintf("ev-%02d-%02d", k+1, n)
			e.Type, e.UserID, e.SessionID = typ, user, session
			e.TS = t.Format(time.RFC3339)
			t = t.Add(time.Duration(5+(k+n)%7) * time.Second)
			e.Device, e.Country = devices[k%users], countries[k%users]
			e.Referrer = referrers[k%len(referrers)]
			return e
		}

		e := ev(PageView)
		e.Page = "/"
		emit(&e)
		var cartValue float64
		items := 0
		lines := 1 + k%4/3 // every fourth session puts two products in the cart
		for i := range lines {
			p := products[(k+3*i)%len(products)]
			e = ev(ProductView)
			e.Page, e.ProductID, e.Price, e.Category = "/p/"+p.id, p.id, p.price, p.category
			emit(&e)
			e = ev(AddToCart)
			e.ProductID, e.Price, e.Category = p.id, p.price, p.category
			e.Quantity = 1 + (k+i)%2
			emit(&e)
			cartValue += p.price * float64(e.Quantity)
			items += e.Quantity
		}
		cartValue = float64(int(cartValue*100+0.5)) / 100
		e = ev(CheckoutStart)
		e.CartValue, e.Items = cartValue, items
		emit(&e)
		if k%3 != 2 {
			e = ev(Purchase)
			e.OrderID, e.Amount, e.Currency = fmt.Sprintf("o-%04d", k+1), cartValue, "EUR"
			emit(&e)
		}

		// Bad input, between sessions, at event times that fit in.
		ts := t.Format(time.RFC3339)
		common := fmt.Sprintf(`"user_id":%q,"session_id":%q,"ts":%q`, user, session, ts)
		switch k {
		case 2:
			raw(TopicCart, user, `{"event_id":"bad-01","type":"add_to_cart",`+common+`,"product_id":"sku-1001","price":89.9,"quan`)
		case 5:
			raw(TopicCart, user, `{"event_id":"bad-02","type":"add_to_cart",`+common+`,"product_id":"sku-2001","price":-3,"quantity":1}`)
		case 8:
			raw(TopicClickstream, user, fmt.Sprintf(`{"event_id":"bad-03","type":"page_view","user_id":%q,"session_id":%q,"ts":"2026-11-23 10:17:00"}`, user, session))
		case 11:
			raw(TopicCart, user, `{"event_id":"bad-04","type":"add_to_cart",`+common+`,"price":24.5,"quantity":1}`)
		case 14:
			raw(TopicTransactions, user, `{"event_id":"bad-05","type":"purchase",`+common+`,"order_id":"o-bad-05","amount":59,"currency":"eur"}`)
		case 17:
			raw(TopicCart, user, `{"event_id":"bad-06","type":"purchase",`+common+`,"order_id":"o-bad-06","amount":19.99,"currency":"EUR"}`)
		case 20:
			raw(TopicClickstream, user, `{"event_id":"bad-07","type":"page_veiw",`+common+`,"page":"/"}`)
		case 23:
			raw(TopicCart, user, `{"event_id":"bad-08","type":"checkout_started",`+common+`,"cart_value":59,"items":-2}`)
		case 26:
			raw(TopicTransactions, user, `{"event_id":"bad-09","type":"purchase",`+common+`,"schema_version":2,"order_id":"o-bad-09","amount":7.5,"currency":"EUR"}`)
		}
	}
	return out
}

// countKcat decodes the files' records the way the pipeline does.
func countKcat(t *testing.T, files map[string][]string) kcatExpected {
	t.Helper()
	x := kcatExpected{ValidByTopic: map[string]int{}, InvalidReasons: []string{}}
	var d Decoder
	var e Event
	users, sessions, first, last := map[string]bool{}, map[string]bool{}, int64(0), int64(0)
	for _, f := range kcatFiles {
		for i, line := range files[f.topic] {
			key, value, ok := strings.Cut(line, "\t")
			if !ok || strings.ContainsAny(value, "\t\n") {
				t.Fatalf("%s:%d: not a kcat -K'\\t' line: %q", f.file, i+1, line)
			}
			if err := d.Decode(f.topic, []byte(value), &e); err != nil {
				x.Invalid++
				x.InvalidReasons = append(x.InvalidReasons, err.Error())
				continue
			}
			if key != e.UserID {
				t.Errorf("%s:%d: key %q, user_id %q", f.file, i+1, key, e.UserID)
			}
			x.ValidByTopic[f.topic]++
			if IsCartEvent(e.Type) {
				x.CartEventsScored++
			}
			if e.Type == Purchase {
				x.Purchases++
			}
			users[e.UserID], sessions[e.SessionID] = true, true
			if first == 0 || e.TimeMillis < first {
				first = e.TimeMillis
			}
			last = max(last, e.TimeMillis)
		}
	}
	slices.Sort(x.InvalidReasons)
	x.Users, x.Sessions = len(users), len(sessions)
	x.FirstEventTime = time.UnixMilli(first).UTC().Format(time.RFC3339)
	x.LastEventTime = time.UnixMilli(last).UTC().Format(time.RFC3339)
	return x
}

func readKcatFiles(t *testing.T) map[string][]string {
	t.Helper()
	files := map[string][]string{}
	for _, f := range kcatFiles {
		b, err := os.ReadFile(filepath.Join(kcatDir, f.file))
		if err != nil {
			t.Fatal(err)
		}
		files[f.topic] = strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	return files
}

// TestKcatFilesAreGenerated keeps the fixtures equal to what generateKcat
// writes (-update rewrites them and kcat_expected.json).
func TestKcatFilesAreGenerated(t *testing.T) {
	gen := generateKcat()
	if *update {
		for _, f := range kcatFiles {
			if err := os.WriteFile(filepath.Join(kcatDir, f.file), []byte(strings.Join(gen[f.topic], "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		var b bytes.Buffer
		enc := stdjson.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(countKcat(t, gen)); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(kcatDir, "kcat_expected.json"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files := readKcatFiles(t)
	for _, f := range kcatFiles {
		if !slices.Equal(files[f.topic], gen[f.topic]) {
			t.Errorf("%s differs from generateKcat; run go test ./schemas -run Kcat -update", f.file)
		}
	}
}

// TestKcatExpectedCounts recomputes kcat_expected.json from the three files
// with the Decoder.
func TestKcatExpectedCounts(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(kcatDir, "kcat_expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want kcatExpected
	dec := stdjson.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}
	got := countKcat(t, readKcatFiles(t))
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Fatalf("kcat_expected.json does not match the files:\n got %s\nwant %s", g, w)
	}
	if got.Invalid < 8 || got.Sessions != 30 || got.Users != 6 {
		t.Fatalf("the stream lost its shape: %+v", got)
	}
}

// TestKcatFilesAgreeWithJSONSchema runs every fixture line through the JSON
// Schema of its topic too: valid for one means valid for the other.
func TestKcatFilesAgreeWithJSONSchema(t *testing.T) {
	schemas := topicSchemas(t)
	var d Decoder
	var e Event
	for topic, lines := range readKcatFiles(t) {
		for _, line := range lines {
			_, value, _ := strings.Cut(line, "\t")
			goErr := d.Decode(topic, []byte(value), &e)
			ok, sErr := schemaAccepts(schemas[topic], []byte(value))
			if (goErr == nil) != ok {
				t.Errorf("%s: Go says %v, JSON Schema says %v\n%s", topic, goErr, sErr, value)
			}
		}
	}
}
