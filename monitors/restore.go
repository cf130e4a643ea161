package monitors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// Incidents live in the monitor's memory, but every one that opens or
// closes is on the alerts topic: a firing alert carries its DedupKey and
// Incident id, a resolved alert the same pair. A starting monitor reads the
// topic from its start to the end it has when Run begins and takes over
// the incidents whose latest alert is a firing one: a condition that clears
// after the restart resolves the same incident (same DedupKey, same
// Incident id), one that still holds stays quiet until the cooldown since
// the firing alert's event time, as it would have without the restart.
//
// This needs no state topic of its own, but it needs the alerts to outlive
// an incident: the topic keeps 7 days (deploy/kafka/topics.yaml), and an
// incident whose breach holds fires again as a new incident every
// cooldown (2 h by default), so an open incident's latest firing alert is
// always within the retention unless the cooldown is set longer than it.
// Silent segment incidents (covered by all traffic's, never published) are
// not restored: they become silent again when they breach.
//
// The retrain policy's state comes back from the retrain topic (keyed by
// model, read the same way and within the same bound): every request the
// monitor writes carries decided_at, the event time it was decided at.
// The newest of the champion's restores the cooldown (mo.lastDrop), those
// within an hour of the newest the hourly budget. A request the budget
// held was never written; it is found instead: a restored firing incident
// that asks for retrains (not fairness), that no request names and that
// was not within the cooldown of a request of its champion when it fired
// was held, and is held again, so releaseHeld sends it once the budget
// frees (once, and never if all its incidents resolve first). Requests
// without decided_at (written before it existed) restore nothing; while
// one of the champion's is on the topic no incident is held again, since
// whether the cooldown suppressed it cannot be told.

// restoreIncidents reads the alerts topic (see above) and keeps the open
// incidents of the watched model in mo.restored for install.
func (mo *Monitor) restoreIncidents(ctx context.Context) error {
	topic := mo.kafka.Topics.Alerts
	parts, err := topicPartitions(ctx, mo.kafka, mo.log, topic)
	if err != nil || len(parts) == 0 {
		return err
	}
	open := map[int]map[string]*incident{}
	var bad int
	_, err = consumers.ReadChangelog(ctx, mo.kafka, mo.log, topic, parts, func(r *kgo.Record) {
		if string(r.Key) != mo.cfg.Model {
			return // alerts are keyed by model
		}
		var a schemas.Alert
		if err := json.Unmarshal(r.Value, &a); err != nil {
			bad++
			return
		}
		foldAlert(open, &a, mo.cfg.Model)
	})
	if err != nil {
		return fmt.Errorf("cannot restore incidents from %s: %w", topic, err)
	}
	if bad > 0 {
		mo.log.Warn("alerts that could not be decoded were skipped while restoring incidents", "topic", topic, "records", bad)
	}
	mo.restored = open
	return nil
}

// foldAlert applies one alert to the open incidents by version and dedup
// key: a firing alert opens (or renews) its incident, a resolved one
// closes it. Alerts of other models, and from before alerts carried a
// dedup key, are ignored.
func foldAlert(open map[int]map[string]*incident, a *schemas.Alert, model string) {
	if a.Model != model || a.DedupKey == "" {
		return
	}
	byKey := open[a.Version]
	switch a.Status {
	case schemas.AlertFiring, "": // empty: records from before statuses existed
		if byKey == nil {
			byKey = map[string]*incident{}
			open[a.Version] = byKey
		}
		id := a.Incident
		if id == "" {
			id = a.ID
		}
		at := a.EventTime.UTC()
		byKey[a.DedupKey] = &incident{key: a.DedupKey, id: id, firing: true, firedAt: at, since: at}
	case schemas.AlertResolved:
		if in := byKey[a.DedupKey]; in != nil && (a.Incident == "" || a.Incident == in.id) {
			delete(byKey, a.DedupKey)
		}
	}
}

// topicPartitions lists the partitions of topic; a topic that does not
// exist yet has none (nothing was ever alerted).
func topicPartitions(ctx context.Context, cfg consumers.KafkaConfig, log *slog.Logger, topic string) ([]int32, error) {
	cl, err := kgo.NewClient(cfg.Opts(log)...)
	if err != nil {
		return nil, fmt.Errorf("cannot create admin client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot list partitions of %s: %w", topic, err)
	}
	var parts []int32
	ends.Each(func(o kadm.ListedOffset) {
		if o.Topic == topic {
			parts = append(parts, o.Partition)
		}
	})
	return parts, nil
}

// pastRetrain is a retrain request of the watched model read back from
// the retrain topic at start.
type pastRetrain struct {
	version int       // champion it was for
	decided time.Time // event time; zero when the record predates decided_at
	alerts  []string  // incident ids
}

// restoreRetrains reads the retrain topic (see above): the watched
// model's requests go to mo.asked for install, and the decided_at times
// of the last hour (of event time, up to the newest) to the budget.
func (mo *Monitor) restoreRetrains(ctx context.Context) error {
	topic := mo.kafka.Topics.Retrain
	parts, err := topicPartitions(ctx, mo.kafka, mo.log, topic)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		mo.askedRead = true // no topic yet: nothing was ever asked
		return nil
	}
	var asked []pastRetrain
	var bad int
	_, err = consumers.ReadChangelog(ctx, mo.kafka, mo.log, topic, parts, func(r *kgo.Record) {
		if string(r.Key) != mo.cfg.Model {
			return // requests are keyed by model
		}
		var q schemas.RetrainRequest
		if err := json.Unmarshal(r.Value, &q); err != nil {
			bad++
			return
		}
		if q.Model != mo.cfg.Model {
			return
		}
		asked = append(asked, pastRetrain{version: q.FromVersion, decided: q.DecidedAt.UTC(), alerts: q.Alerts})
	})
	if err != nil {
		return fmt.Errorf("cannot restore the retrain cooldown and budget from %s: %w", topic, err)
	}
	if bad > 0 {
		mo.log.Warn("retrain requests that could not be decoded were skipped while restoring the retrain budget", "topic", topic, "records", bad)
	}
	mo.asked, mo.askedRead = asked, true
	var times []time.Time
	for _, q := range asked {
		if !q.decided.IsZero() {
			times = append(times, q.decided)
		}
	}
	slices.SortFunc(times, time.Time.Compare)
	for _, at := range times {
		if times[len(times)-1].Sub(at) < time.Hour {
			mo.budget.record(at)
		}
	}
	return nil
}

// restoreRetrainPolicy restores, for champion version, the retrain
// cooldown and a request the budget held (see above) from the requests
// read at start. It runs in install, after the incidents were taken over.
func (mo *Monitor) restoreRetrainPolicy(version int) {
	if !mo.askedRead {
		return // not read: every unnamed incident would look held
	}
	var mine []pastRetrain
	named := map[string]bool{}
	undated := false
	for _, q := range mo.asked {
		for _, id := range q.alerts {
			named[id] = true
		}
		if q.version != version {
			continue
		}
		mine = append(mine, q)
		if q.decided.IsZero() {
			undated = true
		} else if q.decided.After(mo.lastDrop) {
			mo.lastDrop = q.decided
		}
	}
	mo.asked = slices.DeleteFunc(mo.asked, func(q pastRetrain) bool { return q.version == version })
	if !mo.lastDrop.IsZero() {
		mo.log.Info("retrain cooldown restored", "version", version, "last_request", mo.lastDrop, "cooldown", mo.cfg.Cooldown)
	}
	suppressed := func(in *incident) bool {
		for _, q := range mine {
			if !q.decided.IsZero() && !q.decided.After(in.firedAt) && in.firedAt.Sub(q.decided) < mo.cfg.Cooldown {
				return true
			}
		}
		return false
	}
	var held []*incident
	for _, in := range mo.incidents {
		if !in.firing || named[in.id] || !asksRetrain(in.key, mo.cfg.Model, version) || suppressed(in) {
			continue
		}
		held = append(held, in)
	}
	if len(held) == 0 {
		return
	}
	if undated {
		mo.log.Warn("retrain requests without decided_at on the retrain topic: incidents no request names are not held again",
			"version", version, "incidents", len(held))
		return
	}
	slices.SortFunc(held, func(a, b *incident) int { return a.firedAt.Compare(b.firedAt) })
	h := &heldRetrain{reason: incidentKind(held[0].key, mo.cfg.Model, version), since: held[0].since}
	for _, in := range held {
		h.alerts = append(h.alerts, in.id)
		if in.since.Before(h.since) {
			h.since = in.since
		}
	}
	mo.held = h
	mo.log.Warn("retrain request held by the hourly budget before the restart is held again; sent when it frees if an incident is still open",
		"alerts", h.alerts)
}

// incidentKind is the alert kind in a dedup key of model and version
// (see dedupKey).
func incidentKind(key, model string, version int) string {
	rest, ok := strings.CutPrefix(key, model+"/v"+strconv.Itoa(version)+"/")
	if !ok {
		return ""
	}
	kind, _, _ := strings.Cut(rest, "/")
	return kind
}

// asksRetrain reports whether an incident of this dedup key asks for a
// retrain when it opens: every kind but fairness (see evaluateAccuracy).
func asksRetrain(key, model string, version int) bool {
	switch incidentKind(key, model, version) {
	case schemas.AlertDrift, schemas.AlertPredictionDrift, schemas.AlertAccuracy, schemas.AlertErrorChange:
		return true
	}
	return false
}
