package features

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
	"unsafe"
)

// TestValuesRoundTrip: the compact encoding of a pending label's values
// gives back every value bit for bit (signed zero, NaN, infinities,
// subnormals, integers, prices with two decimals and values that are
// neither).
func TestValuesRoundTrip(t *testing.T) {
	f := func(vs ...float64) {
		t.Helper()
		b := make([]byte, valuesSize(vs))
		putValues(b, vs)
		got := decodeValues(b, nil)
		if len(got) != len(vs) {
			t.Fatalf("decoded %d values, want %d", len(got), len(vs))
		}
		for i := range vs {
			if math.Float64bits(got[i]) != math.Float64bits(vs[i]) {
				t.Errorf("value %d: got %v (%#x), want %v (%#x)", i, got[i], math.Float64bits(got[i]), vs[i], math.Float64bits(vs[i]))
			}
		}
	}
	f()
	f(0)
	f(math.Copysign(0, -1), 1, 0.5, 20, 1.0/3, math.NaN(), math.Inf(1), math.Inf(-1), 5e-324, math.MaxFloat64, -7, 1e20)
	f(30.49, -12.99, 0.07, 1<<53-1, -(1<<53 - 1), 1<<53, 1e15+0.25, 0.1+0.2, math.Nextafter(30.49, 31), 720, -0.01)
	f(slices.Repeat([]float64{0, 3, 0.1, 0}, 40)...) // 160 values: a multi-byte count
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		vs := make([]float64, 17)
		for i := range vs {
			switch r.IntN(4) {
			case 0:
				vs[i] = float64(r.IntN(2000)-1000) / 100 // cents
			case 1:
				vs[i] = r.NormFloat64() * 1e3
			case 2:
				vs[i] = math.Float64frombits(r.Uint64()) // any bits
			}
		}
		f(vs...)
	}
	// Zeros take no bytes; integers and two-decimal values a zigzag varint
	// (20: 1 byte, 720: 2, 30.49 as 3049: 2, 0.1 as 10: 1); others 8; plus
	// a tag byte per 4 values after the count.
	if got, want := valuesSize([]float64{0, 20, 720, 30.49, 0.1, 1.0 / 3}), 1+2+1+2+2+1+8; got != want {
		t.Errorf("valuesSize = %d, want %d", got, want)
	}
}

// TestLabelArenaReusesEmptyChunks: bytes come back intact until released,
// and a chunk whose labels are all released is reused, so a stream whose
// labels resolve in order keeps a bounded arena.
func TestLabelArenaReusesEmptyChunks(t *testing.T) {
	var a labelArena
	type held struct {
		ref uint32
		val string
	}
	var live []held
	for i := range 200_000 {
		v := "event-" + strconv.Itoa(i)
		ref, b := a.alloc(len(v))
		copy(b, v)
		live = append(live, held{ref, v})
		if len(live) > 500 { // release the oldest: labels resolve in order
			h := live[0]
			if got := string(a.bytes(h.ref, len(h.val))); got != h.val {
				t.Fatalf("bytes at ref %d = %q, want %q", h.ref, got, h.val)
			}
			a.release(h.ref)
			live = live[1:]
		}
	}
	for _, h := range live {
		if got := string(a.bytes(h.ref, len(h.val))); got != h.val {
			t.Fatalf("bytes at ref %d = %q, want %q", h.ref, got, h.val)
		}
	}
	// 500 live ids of ~12 bytes fit in one or two chunks; allow some slack.
	if len(a.chunks) > 4 {
		t.Errorf("arena grew to %d chunks for 500 live labels: empty chunks are not reused", len(a.chunks))
	}
	for _, h := range live {
		a.release(h.ref)
	}
	for c, n := range a.live {
		if n != 0 {
			t.Errorf("chunk %d counts %d live labels after all were released", c, n)
		}
	}
}

// TestSessionIndex: the sessions index against a map over random creates,
// lookups and deletes (deletes also while iterating, as the sweep does).
func TestSessionIndex(t *testing.T) {
	ps := newPartState(time.Now(), nil)
	want := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100_000 {
		id := "s-" + strconv.Itoa(rng.IntN(20_000))
		switch s := ps.sessions.get(id); {
		case (s != nil) != want[id]:
			t.Fatalf("op %d: get(%q) found %v, want %v", i, id, s != nil, want[id])
		case s == nil:
			s = ps.newSession()
			s.setIDs(id, "u")
			ps.sessions.put(s)
			want[id] = true
		case rng.IntN(2) == 0:
			ps.sessions.del(id)
			s.flags |= flagDeleted
			ps.releaseSession(s)
			delete(want, id)
		}
		if i%10_000 == 0 { // the sweep: delete a third while iterating
			for id, s := range ps.sessions.all() {
				if rng.IntN(3) == 0 {
					ps.sessions.del(id)
					s.flags |= flagDeleted
					ps.releaseSession(s)
					delete(want, id)
				}
			}
		}
	}
	if ps.sessions.len() != len(want) {
		t.Fatalf("len = %d, want %d", ps.sessions.len(), len(want))
	}
	seen := 0
	for id, s := range ps.sessions.all() {
		if !want[id] || s.id() != id || ps.sessions.get(id) != s {
			t.Fatalf("all() yields %q, not indexed as such", id)
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("all() yields %d sessions, want %d", seen, len(want))
	}
	if int(ps.sessions.slab.used) > 20_000+len(ps.freeSessions) {
		t.Errorf("%d slots used for at most 20,000 live sessions (%d free): released sessions are not reused", ps.sessions.slab.used, len(ps.freeSessions))
	}
}

// TestStateStructSizes: the per-key structs keep the sizes the memory
// budget (issue 3: <= 512 bytes per active user) was measured with; a new
// field that grows one shows here before it shows in driftline bench.
func TestStateStructSizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"session", unsafe.Sizeof(session{}), 48},
		{"pendingLabel", unsafe.Sizeof(pendingLabel{}), 40},
	} {
		if c.got != c.want {
			t.Errorf("%s is %d bytes, want %d", c.name, c.got, c.want)
		}
	}
}
