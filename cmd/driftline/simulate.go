package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/demo"
	"github.com/driftline/driftline/internal/storefront"
	"github.com/driftline/driftline/schemas"
)

func simulateCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlags("simulate")
	brokers := fs.String("brokers", "", "produce to these brokers; empty writes JSON lines to stdout")
	seed := fs.Uint64("seed", 1, "random seed: the same seed and flags give the same events")
	scenario := fs.String("scenario", "none", "none, covariate, concept or both")
	shiftAt := fs.Duration("shift-at", time.Hour, "event time after the start at which the shift begins")
	duration := fs.Duration("duration", time.Hour, "event time to simulate")
	rate := fs.Float64("sessions-per-minute", storefront.DefaultSessionsPerMinute, "sessions starting per event-time minute")
	users := fs.Int("users", storefront.DefaultUsers, "user slots; users return for new sessions")
	churn := fs.Float64("churn", storefront.DefaultChurn, "probability a returning slot holds a new user instead (keeps user history stationary); negative: none")
	speed := fs.Duration("speed", 0, "event time per wall second when producing (0: as fast as possible)")
	if err := parse(fs, args); err != nil {
		return err
	}
	sc, err := storefront.ParseScenario(*scenario)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	sim, err := storefront.New(storefront.Config{Seed: *seed, Scenario: sc, ShiftAt: *shiftAt, SessionsPerMinute: *rate, Users: *users, Churn: *churn})
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	end := sim.Now().Add(*duration)
	if *brokers == "" {
		w := bufio.NewWriterSize(os.Stdout, 1<<16)
		buf := make([]byte, 0, 512)
		sim.Advance(end, func(e *schemas.Event) {
			buf = append(e.AppendJSON(buf[:0]), '\n')
			_, _ = w.Write(buf)
		})
		return w.Flush()
	}
	kcfg, err := kafkaConfig(*brokers)
	if err != nil {
		return err
	}
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		return err
	}
	cl, err := kgo.NewClient(kcfg.Opts(log, kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("cannot create producer: %w", err)
	}
	defer cl.Close()
	p := demo.NewProducer(cl, kcfg.Topics, demo.Pace{Speed: *speed})
	start := time.Now()
	if err := p.Advance(ctx, sim, end); err != nil {
		return err
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("cannot flush produced events: %w", err)
	}
	n, _ := p.Produced()
	st := sim.Stats()
	fmt.Fprintf(os.Stderr, "produced %d events (%d sessions, %d add_to_cart, %d purchases) in %.1fs\n",
		n, st.Sessions, st.Count(schemas.AddToCart), st.Count(schemas.Purchase), time.Since(start).Seconds())
	return nil
}
