package window

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/driftline/driftline/schemas"
)

// TestKeyReturnsTheEnginesCopy: Key hands out the engine's own clone of a
// key (not the caller's bytes, which may point into a Kafka record), and
// nothing for a key it does not hold.
func TestKeyReturnsTheEnginesCopy(t *testing.T) {
	e, err := New(Config{Definitions: PurchasePropensity()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := cartEvent("u1", "s1", 1_795_000_000_000, "add_to_cart")
	record := []byte("u1s1") // the ids as they would sit in a record
	ev.UserID, ev.SessionID = string(record[:2]), string(record[2:])
	if err := e.Update(&ev); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ent Entity
		key string
	}{{User, ev.UserID}, {Session, ev.SessionID}} {
		got, ok := e.Key(c.ent, c.key)
		if !ok || got != c.key {
			t.Fatalf("Key(%v, %q) = %q, %v", c.ent, c.key, got, ok)
		}
		if unsafe.StringData(got) == unsafe.StringData(c.key) {
			t.Errorf("Key(%v, %q) returned the caller's bytes, not the engine's copy", c.ent, c.key)
		}
	}
	if _, ok := e.Key(User, "u2"); ok {
		t.Error("Key found a user the engine never saw")
	}
}

// Release takes a dropped engine's keys out of the shared gauge, so a
// partition restored three times is not counted four times.
func TestReleaseTakesKeysOutOfTheGauge(t *testing.T) {
	m := NewMetrics(nil)
	newEngine := func() *Engine {
		e, err := New(Config{Definitions: PurchasePropensity()}, nil, m)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	e := newEngine()
	for i := range 10 {
		ev := schemas.Event{EventID: fmt.Sprint("e", i), Type: schemas.PageView, UserID: fmt.Sprint("u", i), SessionID: fmt.Sprint("s", i), TimeMillis: int64(1000 * i)}
		if err := e.Update(&ev); err != nil {
			t.Fatal(err)
		}
	}
	held := testutil.ToFloat64(m.keysGauge[User]) + testutil.ToFloat64(m.keysGauge[Session])
	if held != 20 {
		t.Fatalf("keys gauge = %v, want 20 (10 users, 10 sessions)", held)
	}
	e.Release()
	if got := testutil.ToFloat64(m.keysGauge[User]) + testutil.ToFloat64(m.keysGauge[Session]); got != 0 {
		t.Fatalf("keys gauge after Release = %v, want 0", got)
	}
}

// TestLongKeys: a slot header holds a key's length in 8 bits; keys of 255
// bytes and more are held through a pointer to the string instead. Both
// are found, handed out and expired like short ones.
func TestLongKeys(t *testing.T) {
	e, err := New(Config{Definitions: PurchasePropensity(), SessionTTL: time.Minute, UserTTL: time.Minute}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, n := range []int{0, 1, 254, 255, 256, 4000} {
		keys = append(keys, strings.Repeat("k", n))
	}
	for i, k := range keys {
		ev := schemas.Event{EventID: "e", Type: schemas.PageView, UserID: k, SessionID: k + "/s", TimeMillis: int64(1000 * i)}
		if err := e.Update(&ev); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		for ent, key := range []string{k, k + "/s"} {
			if got, ok := e.Key(Entity(ent), key); !ok || got != key {
				t.Fatalf("Key(%v, %d bytes) = %d bytes, %v", Entity(ent), len(key), len(got), ok)
			}
		}
	}
	e.Changes(func(Entity, string, bool) {})
	e.Advance(int64(time.Hour.Milliseconds()))
	var gone []string
	e.Changes(func(ent Entity, key string, deleted bool) {
		if deleted && ent == User {
			gone = append(gone, key)
		}
	})
	slices.Sort(gone)
	if !slices.Equal(gone, keys) {
		t.Fatalf("tombstones of %d users, want all %d with their keys", len(gone), len(keys))
	}
}
