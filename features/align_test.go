package features

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestAlignPausesInputsAheadOfALaggingBacklog: an input topic-partition more
// than max_input_skew ahead of another input of its partition that still has
// unread records is paused, and resumed when that one catches up, runs out
// of backlog, or the partition's state goes away; a lagging input without
// backlog (a sparse topic) never pauses the others.
func TestAlignPausesInputsAheadOfALaggingBacklog(t *testing.T) {
	p := newStage(t, false).p
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1")) // never contacted: pausing is client-side
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	topics := p.kafka.Topics.Inputs()
	clicks, carts, txns := p.inputs[topics[0]], p.inputs[topics[1]], p.inputs[topics[2]]
	ps := newPartState(time.Now(), p.engine())
	p.parts[3] = ps
	base := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC).UnixMilli()
	paused := func() []string {
		var got []string
		for topic, parts := range cl.PauseFetchPartitions(nil) {
			for _, part := range parts {
				got = append(got, topic+"/"+string(rune('0'+part)))
			}
		}
		slices.Sort(got)
		return got
	}
	check := func(what string, want ...string) {
		t.Helper()
		p.align(cl, kgo.Fetches{})
		if got := paused(); !slices.Equal(got, want) {
			t.Errorf("%s: paused %v, want %v", what, got, want)
		}
		if n := len(slices.Collect(maps.Keys(p.paused))); n != len(want) {
			t.Errorf("%s: stage thinks %d inputs are paused, want %d", what, n, len(want))
		}
	}
	minute := time.Minute.Milliseconds()
	ps.clocks[clicks].maxTS, ps.clocks[carts].maxTS, ps.clocks[txns].maxTS = base, base+10*minute, base+time.Minute.Milliseconds()
	ps.backlog[clicks] = true
	check("carts 10 min ahead of a clickstream backlog", topics[carts]+"/3")
	ps.clocks[clicks].maxTS = base + 6*minute
	check("clickstream within 5 min again")
	ps.clocks[clicks].maxTS = base
	check("ahead again", topics[carts]+"/3")
	ps.backlog[clicks] = false
	check("clickstream has no backlog left")
	ps.backlog[clicks] = true
	check("backlog again", topics[carts]+"/3")
	delete(p.parts, 3)
	check("state of the partition gone (revoked or aborted)")
	p.parts[3] = ps
	ps.clocks[clicks].maxTS, ps.backlog = 0, [numInputs]bool{false, false, true}
	ps.clocks[txns].maxTS = base
	check("a sparse input with backlog but never read yet, and one lagging 10 min with backlog", topics[carts]+"/3")
}
