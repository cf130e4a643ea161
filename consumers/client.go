package consumers

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// KafkaConfig is how every role connects to Kafka.
type KafkaConfig struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// ClientID names this process in broker logs and quotas.
	ClientID string `yaml:"client_id"`
	// Partitions is the partition count of data topics that Driftline
	// creates when they are missing.
	Partitions int32 `yaml:"partitions"`
	// Topics names every topic.
	Topics Topics `yaml:"topics"`
	// Extra client options (TLS, SASL) appended to every client.
	Extra []kgo.Opt `yaml:"-"`
}

// SetDefaults fills unset fields.
func (c *KafkaConfig) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = "driftline"
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	if c.Topics == (Topics{}) {
		c.Topics = DefaultTopics()
	}
}

// Validate reports a config that cannot work.
func (c *KafkaConfig) Validate() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("kafka: at least one broker is required")
	}
	if c.Partitions < 1 {
		return fmt.Errorf("kafka: partitions must be >= 1, got %d", c.Partitions)
	}
	return c.Topics.Validate()
}

// ParseBrokers splits a comma-separated broker list.
func ParseBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// Opts returns the client options shared by every client of this config,
// followed by more.
func (c *KafkaConfig) Opts(log *slog.Logger, more ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.WithLogger(kgoLogger{log}),
	}
	opts = append(opts, c.Extra...)
	return append(opts, more...)
}

// kgoLogger forwards franz-go's warnings and errors to slog; its info and
// debug chatter stays out of operators' logs.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (l kgoLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	switch level {
	case kgo.LogLevelError:
		l.log.Error(msg, kv...)
	case kgo.LogLevelWarn:
		l.log.Warn(msg, kv...)
	}
}
