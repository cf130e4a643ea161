package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultFeaturesGroup is the consumer group of the feature stage unless
// configured otherwise; its changelog is provisioned with the other topics.
const DefaultFeaturesGroup = "driftline-features"

// ChangelogPrefix starts the name of every state changelog topic: the
// changelog of consumer group G is ChangelogPrefix + G.
const ChangelogPrefix = "driftline.state."

// ChangelogTopic is the compacted changelog topic of a stage's consumer group.
func ChangelogTopic(group string) string { return ChangelogPrefix + group }

// ChangelogSpec is the changelog topic of group: compacted (the latest
// record of each key is the state; a tombstone deletes it) and partitioned
// like the inputs, so the state of input partition N lives in changelog
// partition N.
func ChangelogSpec(group string, partitions int32) TopicSpec {
	compact := "compact"
	return TopicSpec{Name: ChangelogTopic(group), Partitions: partitions, Configs: map[string]*string{"cleanup.policy": &compact}}
}

// ChangelogPartitioner sends records of the changelog topic to the partition
// set on the record (the input partition whose state they carry) and every
// other record where the client's default partitioner would.
func ChangelogPartitioner(changelog string) kgo.Partitioner {
	return changelogPartitioner{changelog: changelog, manual: kgo.ManualPartitioner(), def: kgo.UniformBytesPartitioner(64<<10, true, true, nil)}
}

type changelogPartitioner struct {
	changelog   string
	manual, def kgo.Partitioner
}

func (p changelogPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.changelog {
		return p.manual.ForTopic(topic)
	}
	return p.def.ForTopic(topic)
}

// RestoreStats says what a changelog read did.
type RestoreStats struct {
	// Records applied (tombstones included); control records not counted.
	Records int
	// Bytes of keys and values applied.
	Bytes int
}

// ReadChangelog reads partitions of a changelog topic from their start to
// the high watermark they had when it was called, committed records only
// (an open transaction of another producer is waited for: it commits or is
// aborted by its transaction timeout), and hands every record to apply in
// offset order, partition by partition interleaved. Record bytes are only
// valid during the call. It returns when every partition reached its end,
// or with ctx's error.
func ReadChangelog(ctx context.Context, cfg KafkaConfig, log *slog.Logger, topic string, partitions []int32, apply func(*kgo.Record)) (RestoreStats, error) {
	var st RestoreStats
	if len(partitions) == 0 {
		return st, nil
	}
	adm, err := kgo.NewClient(cfg.Opts(log)...)
	if err != nil {
		return st, fmt.Errorf("cannot create changelog admin client: %w", err)
	}
	defer adm.Close()
	ac := kadm.NewClient(adm)
	ends, err := ac.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return st, fmt.Errorf("cannot list end offsets of changelog %s: %w", topic, err)
	}
	starts, err := ac.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return st, fmt.Errorf("cannot list start offsets of changelog %s: %w", topic, err)
	}
	want := map[int32]int64{} // partition -> end offset still to reach
	consume := map[int32]kgo.Offset{}
	for _, p := range partitions {
		end, ok := ends.Lookup(topic, p)
		if !ok {
			return st, fmt.Errorf("cannot restore partition %d: changelog %s has no such partition (it must be partitioned like the inputs)", p, topic)
		}
		start, _ := starts.Lookup(topic, p)
		if end.Offset > start.Offset {
			want[p] = end.Offset
			consume[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(want) == 0 {
		return st, nil
	}
	cl, err := kgo.NewClient(cfg.Opts(log,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: consume}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records advance the position past the markers that end
		// the log, so the end offset is seen even after an abort.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(50*time.Millisecond),
	)...)
	if err != nil {
		return st, fmt.Errorf("cannot create changelog reader: %w", err)
	}
	defer cl.Close()
	for len(want) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return st, fmt.Errorf("cannot restore from changelog %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, err error) {
			ferr = fmt.Errorf("cannot read changelog %s partition %d: %w", t, p, err)
		})
		if ferr != nil {
			return st, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := want[r.Partition]
			if !ok {
				return
			}
			if !r.Attrs.IsControl() {
				st.Records++
				st.Bytes += len(r.Key) + len(r.Value)
				apply(r)
			}
			if r.Offset+1 >= end {
				delete(want, r.Partition)
			}
		})
	}
	return st, nil
}
