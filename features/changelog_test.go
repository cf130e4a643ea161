package features

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

// storefrontBatches is a simulated stream of all three input topics spread
// over parts partitions by user, cut into batches as a poll would return
// them.
func storefrontBatches(t *testing.T, d time.Duration, parts uint32, batch int) [][]*kgo.Record {
	t.Helper()
	sim, err := storefront.New(storefront.Config{Seed: 3, SessionsPerMinute: 60})
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	offsets := map[string]int64{}
	sim.Advance(sim.Now().Add(d), func(e *schemas.Event) {
		h := fnv.New32a()
		h.Write([]byte(e.UserID))
		topic := schemas.TopicOf(e.Type)
		part := int32(h.Sum32() % parts)
		k := fmt.Sprint(topic, part)
		recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Offset: offsets[k], Key: []byte(e.UserID), Value: e.AppendJSON(nil), Timestamp: time.Now()})
		offsets[k]++
	})
	var out [][]*kgo.Record
	for len(recs) > 0 {
		n := min(batch, len(recs))
		out = append(out, recs[:n])
		recs = recs[n:]
	}
	return out
}

// outputsByEvent indexes a batch's outputs so runs can be compared
// independently of the order labels resolved together come out in.
func outputsByEvent(t *testing.T, recs []*kgo.Record, into map[string]string) {
	t.Helper()
	for _, r := range recs {
		var v struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil {
			t.Fatalf("%s record is not JSON: %v", r.Topic, err)
		}
		var norm map[string]any
		_ = json.Unmarshal(r.Value, &norm)
		delete(norm, "scored_at") // wall time
		b, _ := json.Marshal(norm)
		k := r.Topic + "/" + v.EventID
		if _, dup := into[k]; dup {
			t.Fatalf("%s emitted twice", k)
		}
		into[k] = string(b)
	}
}

// split separates changelog records from outputs.
func split(recs []*kgo.Record, changelog string) (outs, log []*kgo.Record) {
	for _, r := range recs {
		if r.Topic == changelog {
			log = append(log, r)
		} else {
			outs = append(outs, r)
		}
	}
	return outs, log
}

// restoreFrom builds the stage's state from changelog records, as Run does
// from the topic.
func restoreFrom(t *testing.T, p *Processor, log []*kgo.Record) {
	t.Helper()
	states := map[int32]*restoring{}
	for _, r := range log {
		rs := states[r.Partition]
		if rs == nil {
			rs = newRestoring()
			states[r.Partition] = rs
		}
		if err := rs.apply(r.Key, r.Value); err != nil {
			t.Fatal(err)
		}
	}
	p.parts = map[int32]*partState{}
	for part, rs := range states {
		ps, err := rs.finish(p.now(), p.engine())
		if rs.bad > 0 {
			t.Fatalf("partition %d: %d records could not be restored: %v", part, rs.bad, err)
		}
		p.parts[part] = ps
	}
}

// engineKeys returns the engine keys (with their changelog prefix) that a
// changelog holds a value for, by partition.
func engineKeys(log []*kgo.Record) map[int32]map[string]bool {
	keys := map[int32]map[string]bool{}
	for _, r := range log {
		k := string(r.Key)
		if !strings.HasPrefix(k, prefixEngUser) && !strings.HasPrefix(k, prefixEngSession) {
			continue
		}
		if keys[r.Partition] == nil {
			keys[r.Partition] = map[string]bool{}
		}
		if r.Value == nil {
			delete(keys[r.Partition], k)
		} else {
			keys[r.Partition][k] = true
		}
	}
	return keys
}

// encodedState is a partition's state as its changelog encodes it, by key:
// the stage's keys, and the engine's keys among eng (with their prefix).
func encodedState(ps *partState, eng map[string]bool) map[string]string {
	m := map[string]string{}
	for id, s := range ps.sessions.all() {
		m[prefixSession+id] = string((&sessionRecord{ps, s}).appendBinary(nil))
	}
	for k := range eng {
		ent, id := window.User, strings.TrimPrefix(k, prefixEngUser)
		if strings.HasPrefix(k, prefixEngSession) {
			ent, id = window.Session, strings.TrimPrefix(k, prefixEngSession)
		}
		if b, ok := ps.eng.AppendState(ent, id, nil); ok {
			m[k] = string(b)
		}
	}
	m[keyEngineClock] = string(ps.eng.AppendMeta(nil))
	for _, i := range ps.queue {
		pl := ps.labelSlab.at(i)
		if !pl.resolved {
			m[prefixPending+ps.eventID(pl)] = string(ps.appendLabel(nil, pl))
		}
	}
	m[keyClock] = string(ps.appendBinary(nil))
	return m
}

// TestChangelogRestoreContinuesLikeAnUninterruptedRun: a stage restored
// from the changelog written up to a batch boundary holds the same state as
// the stage that wrote it, and from there emits the same vectors,
// predictions and labels as the uninterrupted stage.
func TestChangelogRestoreContinuesLikeAnUninterruptedRun(t *testing.T) {
	batches := storefrontBatches(t, 3*time.Hour, 3, 400)
	a := newStage(t, true).p
	topic := a.changelog.topic
	want := map[string]string{}
	var log []*kgo.Record
	cut := len(batches) / 2
	var wantAfter map[string]string
	var snapshot map[int32]map[string]string
	var snapKeys map[int32][2]int
	for i, b := range batches {
		if i == cut {
			wantAfter = map[string]string{}
			snapshot = map[int32]map[string]string{}
			snapKeys = map[int32][2]int{}
			ek := engineKeys(log)
			for part, ps := range a.parts {
				snapshot[part] = encodedState(ps, ek[part])
				snapKeys[part] = ps.eng.Stats().Keys
			}
		}
		for _, r := range b {
			a.handle(r)
		}
		outs, l := split(a.TakeOutputs(), topic)
		log = append(log, l...)
		outputsByEvent(t, outs, want)
		if wantAfter != nil {
			outputsByEvent(t, outs, wantAfter)
		}
	}
	if len(wantAfter) < 100 {
		t.Fatalf("only %d outputs after the cut: stream too short", len(wantAfter))
	}

	// Replay the first half to get the changelog as of the cut.
	c := newStage(t, true).p
	var cutLog []*kgo.Record
	deletes := 0
	for _, b := range batches[:cut] {
		for _, r := range b {
			c.handle(r)
		}
		_, l := split(c.TakeOutputs(), topic)
		for _, r := range l {
			if r.Value == nil {
				deletes++
			}
		}
		cutLog = append(cutLog, l...)
	}
	if deletes == 0 {
		t.Fatal("no tombstone in the changelog: expired sessions and resolved labels must be deleted")
	}
	d := newStage(t, true).p
	restoreFrom(t, d, cutLog)
	ek := engineKeys(cutLog)
	for part, wantKeys := range snapshot {
		if got, want := d.parts[part].eng.Stats().Keys, snapKeys[part]; got != want {
			t.Errorf("partition %d: restored engine holds %v keys (user, session), the writer %v", part, got, want)
		}
		got := encodedState(d.parts[part], ek[part])
		for k, v := range wantKeys {
			if got[k] != v {
				t.Errorf("partition %d key %q restored as %x, want %x", part, k, got[k], v)
			}
		}
		for k := range got {
			if _, ok := wantKeys[k]; !ok {
				t.Errorf("partition %d: restored key %q the writer no longer had", part, k)
			}
		}
	}
	got := map[string]string{}
	for _, b := range batches[cut:] {
		for _, r := range b {
			d.handle(r)
		}
		outs, _ := split(d.TakeOutputs(), topic)
		outputsByEvent(t, outs, got)
	}
	diffs := 0
	for k, v := range wantAfter {
		if got[k] != v {
			if diffs++; diffs <= 5 {
				t.Errorf("%s after restore:\n got %s\nwant %s", k, got[k], v)
			}
		}
	}
	if len(got) != len(wantAfter) {
		t.Errorf("restored stage emitted %d outputs, uninterrupted %d", len(got), len(wantAfter))
	}
	t.Logf("%d changelog records (%d tombstones) for %d batches; %d outputs after the cut equal", len(cutLog), deletes, cut, len(wantAfter)-diffs)
}

// TestChangelogOneRecordPerDirtyKeyPerBatch: however many events touch a
// key in a batch, the batch writes it once.
func TestChangelogOneRecordPerDirtyKeyPerBatch(t *testing.T) {
	s := newStage(t, true)
	for i := range 5 {
		s.send(schemas.PageView, time.Duration(i)*time.Second, "s1", "")
	}
	_, log := split(s.p.TakeOutputs(), s.p.changelog.topic)
	var keys []string
	for _, r := range log {
		keys = append(keys, string(r.Key))
	}
	slices.Sort(keys)
	if want := []string{"c", "s/s1", "wm", "ws/s1", "wu/u1"}; !slices.Equal(keys, want) {
		t.Fatalf("changelog keys %q, want %q", keys, want)
	}
	for _, r := range log {
		if r.Topic != s.p.changelog.topic || r.Partition != 0 {
			t.Errorf("record %q to %s/%d, want the changelog partition of the input (0)", r.Key, r.Topic, r.Partition)
		}
	}
	// Nothing changed: nothing written.
	if recs := s.p.TakeOutputs(); len(recs) != 0 {
		t.Errorf("%d records without a change", len(recs))
	}
	// A cart event leaves a pending label; its purchase resolves it: the
	// label's key is written, then deleted.
	s.send(schemas.AddToCart, time.Minute, "s1", cartItem)
	_, log = split(s.p.TakeOutputs(), s.p.changelog.topic)
	if !hasKey(log, "p/e5", false) {
		t.Fatalf("pending label not written: %v", keysOf(log))
	}
	s.send(schemas.Purchase, 2*time.Minute, "s1", `,"order_id":"o1","amount":40,"currency":"EUR"`)
	_, log = split(s.p.TakeOutputs(), s.p.changelog.topic)
	if !hasKey(log, "p/e5", true) {
		t.Fatalf("resolved label not tombstoned: %v", keysOf(log))
	}
}

func hasKey(log []*kgo.Record, key string, tombstone bool) bool {
	for _, r := range log {
		if string(r.Key) == key && (r.Value == nil) == tombstone {
			return true
		}
	}
	return false
}

func keysOf(log []*kgo.Record) []string {
	var out []string
	for _, r := range log {
		out = append(out, fmt.Sprintf("%s(tombstone=%v)", r.Key, r.Value == nil))
	}
	return out
}

func TestChangelogRejectsCorruptValues(t *testing.T) {
	rs := newRestoring()
	for _, c := range []struct{ key, value string }{
		{"s/x", "\x01junk"},         // version 1: the hand-written counters, before the window engine
		{"u/x", "\x01"},             // the hand-written user record: gone with the window engine
		{"p/x", "\x01\xff\xff\xff"}, // length past the end
		{"zz", "\x01"},              // unknown key
	} {
		if err := rs.apply([]byte(c.key), []byte(c.value)); err == nil {
			t.Errorf("%q=%q restored without error", c.key, c.value)
		}
	}
	if rs.bad != 4 {
		t.Errorf("bad = %d, want 4", rs.bad)
	}
	// An engine record of another layout is skipped and counted, never a panic.
	rs.apply([]byte("ws/x"), []byte("\x01junk"))
	rs.apply([]byte("wm"), []byte("\x09"))
	s := newStage(t, false)
	if _, err := rs.finish(time.Now(), s.p.engine()); err == nil || rs.bad != 6 {
		t.Errorf("finish with corrupt engine records: err %v, bad %d, want an error and 6", err, rs.bad)
	}
	if !bytes.Equal([]byte(keyClock), []byte("c")) {
		t.Fatal("clock key changed: existing changelogs would not restore")
	}
}
