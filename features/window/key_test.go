package window

import (
	"testing"
	"unsafe"
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
