package monitors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
// What is not restored: the retrain cooldown and the hourly budget (the
// requests on the retrain topic carry wall time, the budget counts event
// time), and a request the budget held back; an incident taken over never
// asks for a retrain again unless it fires anew after the cooldown.

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
