package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/app"
)

// roles are every role, the sink only when a ClickHouse DSN is given: the
// demo needs no ClickHouse.
func (d *run) roles() []string {
	if d.cfg.ClickHouseDSN != "" {
		return slices.Clone(app.AllRoles)
	}
	return slices.DeleteFunc(slices.Clone(app.AllRoles), func(r string) bool { return r == app.RoleSink })
}

// drainSink waits, once the loop has closed and the storefront stopped,
// until the sink has written every record to ClickHouse (its group lag is
// 0), so the analytics queries see the whole run.
func (d *run) drainSink(kcfg consumers.KafkaConfig, proc *app.Process) error {
	s := proc.Sink()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kcfg.Opts(d.log)...)
	if err != nil {
		return fmt.Errorf("cannot create sink lag client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	start := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		lag, err := s.Lag(ctx, adm)
		if err == nil && lag == 0 {
			d.step("ClickHouse: the sink caught up %.1fs after the loop closed (database %s)", time.Since(start).Seconds(), d.sinkDatabase())
			return nil
		}
		select {
		case <-ctx.Done():
			by, _ := s.LagByTopic(context.Background(), adm)
			return fmt.Errorf("cannot drain the sink into ClickHouse within 90 s (lag %d by topic %v, last error %v)", lag, by, err)
		case <-tick.C:
		}
	}
}

func (d *run) sinkDatabase() string {
	if d.cfg.ClickHouseDatabase != "" {
		return d.cfg.ClickHouseDatabase
	}
	return "driftline"
}
