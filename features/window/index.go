package window

import "hash/maphash"

// keyIndex maps a key to its slot: open addressing with linear probing over
// 8-byte entries (32 bits of the key's hash, slot+1), the key itself read
// from the slot's header. It replaces a map[string]int32, whose entries
// (string header, value, control byte, growth slack) cost three to four
// times as much per key; state per active user is what it saves.
type keyIndex struct {
	seed    maphash.Seed
	entries []uint64 // 0: empty
	n       int
}

func newKeyIndex() keyIndex {
	return keyIndex{seed: maphash.MakeSeed(), entries: make([]uint64, 64)}
}

func (x *keyIndex) hash(key string) uint32 { return uint32(maphash.String(x.seed, key)) }

// find returns the slot of key and the position of its entry.
func (x *keyIndex) find(t *table, key string) (slot int32, pos int, ok bool) {
	h := x.hash(key)
	mask := len(x.entries) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		e := x.entries[i]
		if e == 0 {
			return -1, i, false
		}
		if uint32(e>>32) == h {
			if s := int32(uint32(e)) - 1; t.meta(s).key == key {
				return s, i, true
			}
		}
	}
}

// insert adds a key known to be absent.
func (x *keyIndex) insert(key string, slot int32) {
	if (x.n+1)*4 > len(x.entries)*3 {
		x.grow()
	}
	x.place(uint64(x.hash(key))<<32 | uint64(uint32(slot+1)))
	x.n++
}

func (x *keyIndex) place(e uint64) {
	mask := len(x.entries) - 1
	i := int(uint32(e>>32)) & mask
	for x.entries[i] != 0 {
		i = (i + 1) & mask
	}
	x.entries[i] = e
}

func (x *keyIndex) grow() {
	old := x.entries
	x.entries = make([]uint64, 2*len(old))
	for _, e := range old {
		if e != 0 {
			x.place(e)
		}
	}
}

// remove deletes the entry at pos, shifting back the entries of its probe
// run so that no lookup stops at a hole.
func (x *keyIndex) remove(pos int) {
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
			k := int(uint32(e>>32)) & mask
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
