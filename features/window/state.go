package window

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// stateVersion leads every encoded key state and partition meta record.
const stateVersion = 1

// State is one key's state as a value: what a changelog record holds.
type State struct {
	Entity Entity
	Layout uint32 // fingerprint of the definitions' layout of the entity
	Seen   int64  // latest event time of the key, Unix ms
	Words  []float64
}

// AppendBinary appends the encoding: version byte, entity, layout (4 bytes),
// varint seen time, uvarint word count, a bitmap of the non-zero words and
// those words (8 bytes each, little endian). Most words of a key are zero.
func (s *State) AppendBinary(dst []byte) ([]byte, error) {
	dst = append(dst, stateVersion, byte(s.Entity))
	dst = binary.LittleEndian.AppendUint32(dst, s.Layout)
	dst = binary.AppendVarint(dst, s.Seen)
	dst = binary.AppendUvarint(dst, uint64(len(s.Words)))
	mapAt := len(dst)
	for range (len(s.Words) + 7) / 8 {
		dst = append(dst, 0)
	}
	for i, w := range s.Words {
		if b := math.Float64bits(w); b != 0 {
			dst[mapAt+i/8] |= 1 << (i % 8)
			dst = binary.LittleEndian.AppendUint64(dst, b)
		}
	}
	return dst, nil
}

// errCorrupt wraps every decoding failure.
var errCorrupt = errors.New("corrupt state record")

// UnmarshalBinary decodes AppendBinary's output, reusing s.Words.
func (s *State) UnmarshalBinary(b []byte) error {
	if len(b) < 6 {
		return fmt.Errorf("cannot decode state: %w: %d bytes", errCorrupt, len(b))
	}
	if b[0] != stateVersion {
		return fmt.Errorf("cannot decode state: unsupported version %d (want %d)", b[0], stateVersion)
	}
	if b[1] >= byte(numEntities) {
		return fmt.Errorf("cannot decode state: %w: entity %d", errCorrupt, b[1])
	}
	s.Entity = Entity(b[1])
	s.Layout = binary.LittleEndian.Uint32(b[2:])
	b = b[6:]
	seen, n := binary.Varint(b)
	if n <= 0 {
		return fmt.Errorf("cannot decode state: %w: seen time", errCorrupt)
	}
	s.Seen, b = seen, b[n:]
	nw, n := binary.Uvarint(b)
	if n <= 0 || nw > 1<<20 {
		return fmt.Errorf("cannot decode state: %w: word count", errCorrupt)
	}
	b = b[n:]
	mapLen := (int(nw) + 7) / 8
	if len(b) < mapLen {
		return fmt.Errorf("cannot decode state: %w: short bitmap", errCorrupt)
	}
	bitmap, b := b[:mapLen], b[mapLen:]
	set := 0
	for _, m := range bitmap {
		set += bits.OnesCount8(m)
	}
	if len(b) != 8*set {
		return fmt.Errorf("cannot decode state: %w: %d bytes of words for %d set words", errCorrupt, len(b), set)
	}
	s.Words = s.Words[:0]
	for i := range int(nw) {
		w := 0.0
		if bitmap[i/8]&(1<<(i%8)) != 0 {
			w = math.Float64frombits(binary.LittleEndian.Uint64(b))
			b = b[8:]
		}
		s.Words = append(s.Words, w)
	}
	return nil
}

// Changes reports the keys whose state changed since the last call, then
// forgets them: first the dropped keys (deleted: write a tombstone), then
// the changed ones (write AppendState's record). Call it once per
// transaction; fn must not call Update or Advance. No allocation.
func (e *Engine) Changes(fn func(ent Entity, key string, deleted bool)) {
	for _, t := range e.tables {
		for i, k := range t.tombs {
			fn(t.ent, k, true)
			t.tombs[i] = ""
		}
		t.tombs = t.tombs[:0]
	}
	for _, t := range e.tables {
		for _, s := range t.dirty {
			m := t.meta(s)
			if !m.dirty() {
				continue // listed twice: freed and reused in one batch
			}
			m.hf &^= dirtyBit
			if m.live() {
				fn(t.ent, m.key(), false)
			}
		}
		t.dirty = t.dirty[:0]
	}
}

// AppendState appends the encoded state of a key (see State.AppendBinary)
// and reports whether the key exists. No allocation beyond growing dst.
func (e *Engine) AppendState(ent Entity, key string, dst []byte) ([]byte, bool) {
	t := e.tables[ent]
	s, ok := t.lookup(key)
	if !ok {
		return dst, false
	}
	st := State{Entity: ent, Layout: t.hash, Seen: t.meta(s).seen, Words: t.words(s)}
	dst, _ = st.AppendBinary(dst)
	return dst, true
}

// Restore sets a key's state from a changelog record (AppendState's
// output); an empty value is a tombstone and drops the key. Restoring does
// not mark the key changed. A record of another layout (the definitions or
// the lateness changed since it was written) is an error: the caller
// rebuilds from the input instead.
func (e *Engine) Restore(ent Entity, key string, value []byte) error {
	if ent >= numEntities {
		return fmt.Errorf("cannot restore key %q: unknown entity %d", key, ent)
	}
	t := e.tables[ent]
	s, exists := t.lookup(key)
	if len(value) == 0 {
		if exists {
			e.unschedule(t, s)
			t.remove(s)
			t.tombs = t.tombs[:len(t.tombs)-1] // from the changelog: nothing to report
			e.m.keys(ent, -1)
		}
		return nil
	}
	var st State
	if err := st.UnmarshalBinary(value); err != nil {
		return fmt.Errorf("cannot restore %s %q: %w", ent, key, err)
	}
	if st.Entity != ent || st.Layout != t.hash || len(st.Words) != t.stride {
		return fmt.Errorf("cannot restore %s %q: record of entity %s, layout %08x, %d words; the definitions need %s, %08x, %d",
			ent, key, st.Entity, st.Layout, len(st.Words), ent, t.hash, t.stride)
	}
	if err := checkWords(t, st.Words); err != nil {
		return fmt.Errorf("cannot restore %s %q: %w", ent, key, err)
	}
	if !exists {
		if t.used >= maxSlots && len(t.free) == 0 {
			return fmt.Errorf("cannot restore %s %q: %w: %d keys", ent, key, ErrFull, t.live)
		}
		s = t.create(key)
		e.m.keys(ent, 1)
	}
	copy(t.words(s), st.Words)
	t.meta(s).seen = st.Seen
	e.schedule(t, s, e.nextDue(t, s))
	return nil
}

// nextDue is when a restored key's timer must fire: its earliest window
// end after the watermark, or its expiry.
func (e *Engine) nextDue(t *table, s int32) int64 {
	w := t.words(s)
	due := t.meta(s).seen + t.ttl
	for i := range t.feats {
		l := &t.feats[i]
		d := l.d
		for j := range l.nb {
			b := w[l.off+j*l.bw : l.off+(j+1)*l.bw]
			switch d.kind {
			case Tumbling, Hopping:
				if b[1] > 0 {
					end := int64(b[0]) + d.hop
					if end <= e.wm {
						end += (e.wm-end)/d.hop*d.hop + d.hop
					}
					due = min(due, end)
				}
			case SessionGap:
				if b[2] > 0 {
					due = min(due, int64(b[1])+d.gap)
				}
			}
		}
	}
	return due
}

// AppendMeta appends the partition's clock (maximum event time and
// watermark): one changelog record per partition, written with the keys.
func (e *Engine) AppendMeta(dst []byte) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendVarint(dst, e.maxTS)
	return binary.AppendVarint(dst, e.wm)
}

// RestoreMeta sets the partition's clock from AppendMeta's output. Call it
// before Restore so restored keys schedule against the right watermark.
func (e *Engine) RestoreMeta(b []byte) error {
	if len(b) < 1 || b[0] != stateVersion {
		return fmt.Errorf("cannot restore partition clock: %w: version", errCorrupt)
	}
	maxTS, n := binary.Varint(b[1:])
	if n <= 0 {
		return fmt.Errorf("cannot restore partition clock: %w: max time", errCorrupt)
	}
	wm, m := binary.Varint(b[1+n:])
	if m <= 0 || 1+n+m != len(b) {
		return fmt.Errorf("cannot restore partition clock: %w: watermark", errCorrupt)
	}
	e.maxTS, e.wm = maxTS, wm
	return nil
}

// checkWords rejects a record whose counts could not have been written by
// an engine: negative, fractional or beyond their ring.
func checkWords(t *table, w []float64) error {
	count := func(v float64, hi int) bool {
		return v >= 0 && v == math.Trunc(v) && (hi < 0 || v <= float64(hi))
	}
	for i := range t.feats {
		l := &t.feats[i]
		for j := range l.nb {
			b := w[l.off+j*l.bw : l.off+(j+1)*l.bw]
			agg := b[l.hdr:]
			ok := count(agg[0], -1)
			if l.d.agg == DistinctCount {
				ok = ok && count(agg[1], -1)
			}
			if l.d.pit > 0 {
				ok = ok && count(agg[bucketWords(l.d)], l.d.pit)
			}
			if !ok {
				return fmt.Errorf("%w: feature %s, bucket %d has impossible counts", errCorrupt, l.d.name, j)
			}
		}
	}
	return nil
}
