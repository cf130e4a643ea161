package window

import (
	"hash/maphash"
	"math/bits"
)

// keyIndex maps a key to its slot: open addressing with linear probing over
// 4-byte entries (slot+1 in the low shift bits, the top 32-shift bits of the
// key's hash above them as a tag), the key itself read from the slot's
// header. It replaces a map[string]int32, whose entries (string header,
// value, control byte, growth slack) cost six to eight times as much per
// key; state per active user is what it saves. An entry does not hold its
// key's home position: growing the index and backward-shift deletion hash
// the key again from the slot's header.
type keyIndex struct {
	seed    maphash.Seed
	shift   uint     // slot bits; widened as the table's slots outgrow it
	entries []uint32 // 0: empty
	n       int
}

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), shift: uint(bits.Len(chunkSlots)), entries: make([]uint32, 64)}
}

func (x *keyIndex) hash(key string) uint32 { return uint32(maphash.String(x.seed, key)) }

func (x *keyIndex) slot(e uint32) int32 { return int32(e&(1<<x.shift-1)) - 1 }

// find returns the slot of key and the position of its entry.
func (x *keyIndex) find(t *table, key string) (slot int32, pos int, ok bool) {
	h := x.hash(key)
	tag := h >> x.shift
	mask := len(x.entries) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := x.entries[i]
		if e == 0 {
			return -1, i, false
		}
		if e>>x.shift == tag {
			if s := x.slot(e); t.meta(s).key() == key {
				return s, i, true
			}
		}
	}
}

// insert adds a key known to be absent; the slot's header holds key
// already.
func (x *keyIndex) insert(t *table, key string, slot int32) {
	size, shift := len(x.entries), x.shift
	if (x.n+1)*4 > size*3 {
		size *= 2
	}
	for uint32(slot+1) >= 1<<shift {
		shift++
	}
	if size != len(x.entries) || shift != x.shift {
		x.rebuild(t, size, shift)
	}
	x.place(x.hash(key), slot)
	x.n++
}

func (x *keyIndex) place(h uint32, slot int32) {
	mask := len(x.entries) - 1
	i := int(h) & mask
	for x.entries[i] != 0 {
		i = (i + 1) & mask
	}
	x.entries[i] = h>>x.shift<<x.shift | uint32(slot+1)
}

func (x *keyIndex) rebuild(t *table, size int, shift uint) {
	old, oldShift := x.entries, x.shift
	x.entries = make([]uint32, size)
	for _, e := range old {
		if e != 0 {
			s := int32(e&(1<<oldShift-1)) - 1
			x.shift = shift
			x.place(x.hash(t.meta(s).key()), s)
		}
	}
	x.shift = shift
}

// remove deletes the entry at pos, shifting back the entries of its probe
// run so that no lookup stops at a hole.
func (x *keyIndex) remove(t *table, pos int) {
	mask := len(x.entries) - 1
	i := pos
	for {
		x.entries[i] = 0
		j := i
		for {
			j = (j + 1) & mask
			e := x.entries[j]
			if e == 0 {
				x.n--
				return
			}
			k := int(x.hash(t.meta(x.slot(e)).key())) & mask
			// The entry at j stays if its home k lies cyclically in (i, j].
			if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
				continue
			}
			x.entries[i] = e
			i = j
			break
		}
	}
}
