package features

import (
	"time"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// windowPublisher turns the windows a partition's engine closes into
// driftline.windows records of the batch being handled.
//
// Exactly once: the engine closes windows only inside Update and Advance,
// which the stage calls only while it handles a batch, inside that batch's
// transaction, so a window result is committed together with the input
// offsets whose events moved the watermark past the window's end and with
// the changelog records of the cleared window state. When the transaction
// aborts, its results are discarded with it; the partition's state is
// restored from the changelog as of the last commit (where the window is
// still open) and the replayed inputs close it again, in the transaction
// that commits. The restore itself never closes a window (RestoreMeta and
// Restore only set state), and the callback is installed only once it is
// done (watchWindows), so a restore cannot publish.
type windowPublisher struct {
	topic string
	defs  string // the definitions' name
	model string
	// agg and kind are the definitions' strings by feature index: records
	// share them, nothing is built per window.
	agg, kind []string
	enabled   bool // some feature has windows that close
	rec       schemas.WindowResult
}

func newWindowPublisher(topic string, defs *window.Definitions, model string) windowPublisher {
	w := windowPublisher{topic: topic, defs: defs.Name, model: model}
	for _, f := range defs.Features {
		w.agg = append(w.agg, f.Aggregation)
		w.kind = append(w.kind, f.Window.Kind)
		switch f.Window.Kind {
		case schemas.WindowTumbling, schemas.WindowHopping, schemas.WindowSession:
			w.enabled = true
		}
	}
	return w
}

// watchWindows makes the partition's engine publish the windows it closes.
// Call it when the partition's state is complete: after a restore, never
// before (see windowPublisher). One closure per partition state; nothing
// per window.
func (p *Processor) watchWindows(part int32, ps *partState) {
	if !p.win.enabled || p.win.topic == "" {
		return
	}
	eng := ps.eng
	eng.OnClose(func(r window.Result) { p.publishWindow(part, eng, r) })
}

// publishWindow queues one closed window. It runs inside the engine's
// Update or Advance: it only reads the watermark, which the engine has set
// before it closes windows. The record is encoded at once into the batch's
// buffer (the key and the engine's strings are copied there).
func (p *Processor) publishWindow(part int32, eng *window.Engine, r window.Result) {
	w := &p.win
	rec := &w.rec
	*rec = schemas.WindowResult{
		Definitions: w.defs, Model: w.model, Feature: r.Name, Aggregation: w.agg[r.Feature], Kind: w.kind[r.Feature],
		Entity: r.Entity.String(), Key: r.Key,
		Window:    schemas.Window{From: time.UnixMilli(r.Start).UTC(), To: time.UnixMilli(r.End).UTC()},
		Value:     r.Value,
		Events:    r.Events,
		Watermark: time.UnixMilli(eng.Watermark()).UTC(), InputPartition: int(part),
	}
	if r.Entity == window.Session {
		// The session's segments, while the stage holds the session: a
		// gap plus the horizon past its last event (a session-keyed
		// window closing later than that goes without).
		if ps := p.parts[part]; ps != nil {
			if s := ps.sessions.get(r.Key); s != nil {
				rec.Segments = *ps.segs(s)
			}
		}
	}
	err := p.outw.window(w.topic, rec)
	*rec = schemas.WindowResult{} // holds no engine key once the record is encoded
	if err != nil {
		// Our own records always encode (window values are finite); a
		// failure is a bug worth a loud log.
		p.log.Error("cannot encode window result", "feature", r.Name, "key", r.Key, "err", err)
		return
	}
	p.out = append(p.out, &p.outw.recs[len(p.outw.recs)-1])
}

// watermarkWith is the partition's watermark as it will be once an event of
// input i at ms is read (observe), without recording it: the stage advances
// the engine to it before the event is applied, as the engine's own rule
// does (Update moves the watermark, then applies). The rings of tumbling and
// hopping windows are sized for that order: applied first, an event that
// moves the watermark by more than a ring's span (size plus lateness plus
// the stage's Config.RingSlack) lands in a slot whose pane
// has not been closed yet, and that pane's windows are lost (counted in
// driftline_window_overflows_total and logged). A late event does not move
// it (its time is behind the watermark).
func (p *partState) watermarkWith(i int, ms int64, now time.Time, latenessMs int64, idle time.Duration) int64 {
	saved := p.clocks[i]
	p.clocks[i].maxTS = max(saved.maxTS, ms)
	p.clocks[i].lastRead = now
	wm := p.watermark(now, latenessMs, idle)
	p.clocks[i] = saved
	return wm
}
