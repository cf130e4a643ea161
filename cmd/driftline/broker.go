package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/driftline/driftline/consumers"
)

func brokerCmd(ctx context.Context, args []string, log *slog.Logger) error {
	fs := newFlags("broker")
	listen := fs.String("listen", "127.0.0.1:9092", "host:port of the broker's listener")
	dataDir := fs.String("data-dir", "", "persist topics, offsets and the registry here (empty: in memory)")
	partitions := fs.Int("partitions", 8, "partitions of Driftline's data topics and of auto-created topics")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := consumers.NewBroker(consumers.BrokerConfig{Listen: *listen, DataDir: *dataDir, Partitions: *partitions}, log)
	if err != nil {
		return err
	}
	kcfg := consumers.KafkaConfig{Brokers: []string{b.Addr()}, Partitions: int32(*partitions)}
	kcfg.SetDefaults()
	if err := consumers.ProvisionTopics(ctx, kcfg, log); err != nil {
		b.Close()
		return fmt.Errorf("cannot provision topics: %w", err)
	}
	fmt.Printf("driftline broker listening on %s (Ctrl-C to stop)\n", b.Addr())
	return b.Run(ctx)
}
