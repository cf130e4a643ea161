package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/bench"
)

func benchCmd(ctx context.Context, args []string, _ *slog.Logger) error {
	fs := newFlags("bench")
	asJSON := fs.Bool("json", false, "print one JSON object")
	users := fs.Int("users", 1_000_000, "active users for the state-size measurement")
	e2e := fs.Int("e2e-events", 300_000, "events pre-produced for the end-to-end throughput run")
	rate := fs.Int("live-rate", 20_000, "events per second while latency is measured")
	secs := fs.Int("live-seconds", 5, "seconds of live production while latency is measured")
	brokers := fs.String("brokers", "", "a fresh, empty broker (driftline broker) for the end-to-end and latency runs instead of one embedded in this process")
	if err := parse(fs, args); err != nil {
		return err
	}
	var progress io.Writer = os.Stderr
	var brokerList []string
	if *brokers != "" {
		brokerList = consumers.ParseBrokers(*brokers)
	}
	r, err := bench.Run(ctx, bench.Config{Users: *users, E2EEvents: *e2e, LiveRate: *rate, LiveSeconds: *secs, Brokers: brokerList, Out: progress})
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(r)
	}
	fmt.Printf(`hot path, one core:          %.0f events/s (%.0f ns, %.0f allocs per event)
encoding/json decode only:   %.0f events/s  -> hot path is %.2fx the baseline
end to end, embedded broker: %.0f events/s over %d events (%.2fs of it joining the group)
state per active user:       %.0f bytes at %d users
event -> prediction:         p50 %.2f ms, p99 %.2f ms over %d cart events at %d events/s
exactly-once floor:          p50 %.2f ms, p99 %.2f ms (same stream, a transactional copy loop that does no work)
`, r.HotPathEventsPerSec, r.HotPathNsPerEvent, r.AllocsPerEvent, r.BaselineEventsPerSec, r.HotPathVsBaseline,
		r.E2EEventsPerSec, r.E2EEvents, r.E2EIncludesGroupJoinSec, r.BytesPerActiveUser, r.ActiveUsers,
		r.P50EventToPredictionMs, r.P99EventToPredictionMs, r.LatencySamples, r.LiveEventsPerSec,
		r.P50FloorMs, r.P99FloorMs)
	return nil
}
