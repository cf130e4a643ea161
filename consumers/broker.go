package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokerConfig configures the embedded Kafka-protocol broker (franz-go's
// kfake) that `driftline demo`, `driftline broker` and the tests run. It is
// for development and tests, never production: it has no replication.
type BrokerConfig struct {
	// Listen is host:port for the broker's one listener; port 0 picks a free
	// port. Default 127.0.0.1:0.
	Listen string `yaml:"listen"`
	// DataDir, when set, persists topics, committed offsets and the registry
	// so they survive a restart. Empty keeps everything in memory.
	DataDir string `yaml:"data_dir"`
	// Partitions for topics a client auto-creates. Default 8.
	Partitions int `yaml:"partitions"`
}

func (c *BrokerConfig) setDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
}

// Broker is a running embedded broker.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
}

// NewBroker starts an embedded broker.
func NewBroker(cfg BrokerConfig, log *slog.Logger) (*Broker, error) {
	cfg.setDefaults()
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot parse listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cannot parse listen port %q: %w", portStr, err)
	}
	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, net.JoinHostPort(host, strconv.Itoa(port)))
		}),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.AllowAutoTopicCreation(),
		// The compacted registry and changelogs should compact in minutes,
		// not kfake's default hour.
		kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "60000"}),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start embedded broker on %s: %w", cfg.Listen, err)
	}
	b := &Broker{cluster: c, addr: c.ListenAddrs()[0]}
	log.Info("embedded broker listening", "addr", b.addr, "data_dir", cfg.DataDir)
	return b, nil
}

// Addr is the broker's host:port.
func (b *Broker) Addr() string { return b.addr }

// Run blocks until ctx ends, then closes the broker.
func (b *Broker) Run(ctx context.Context) error {
	<-ctx.Done()
	b.Close()
	return nil
}

// Close stops the broker, flushing persisted state. It is idempotent.
func (b *Broker) Close() { b.cluster.Close() }

// ProvisionTopics creates Driftline's topics on the brokers of cfg.
func ProvisionTopics(ctx context.Context, cfg KafkaConfig, log *slog.Logger) error {
	cl, err := kgo.NewClient(cfg.Opts(log)...)
	if err != nil {
		return fmt.Errorf("cannot create admin client: %w", err)
	}
	defer cl.Close()
	return Provision(ctx, kadm.NewClient(cl), cfg.Topics.Specs(cfg.Partitions))
}
