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
	// Security is SASL and TLS towards a real cluster; see security.go.
	Security Security `yaml:"security"`
	// Extra client options appended to every client (tests, embedding).
	Extra []kgo.Opt `yaml:"-"`
	// Metrics, when set, gives every client franz-go's kprom metrics on the
	// process registry.
	Metrics *ClientMetrics `yaml:"-"`
}

// SetDefaults fills unset fields.
func (c *KafkaConfig) SetDefaults() {
	if c.ClientID == "" {
		c.ClientID = "driftline"
	}
	if c.Partitions == 0 {
		c.Partitions = 8
	}
	// Each topic left empty gets its default: a config that renames one
	// keeps the others.
	d := DefaultTopics()
	for _, f := range []struct{ t, def *string }{
		{&c.Topics.Clickstream, &d.Clickstream}, {&c.Topics.Cart, &d.Cart}, {&c.Topics.Transactions, &d.Transactions},
		{&c.Topics.Features, &d.Features}, {&c.Topics.Predictions, &d.Predictions}, {&c.Topics.Labels, &d.Labels},
		{&c.Topics.Windows, &d.Windows}, {&c.Topics.Alerts, &d.Alerts}, {&c.Topics.Reports, &d.Reports},
		{&c.Topics.Retrain, &d.Retrain}, {&c.Topics.Models, &d.Models}, {&c.Topics.DLQ, &d.DLQ},
	} {
		if *f.t == "" {
			*f.t = *f.def
		}
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
	if err := c.Security.Validate(); err != nil {
		return err
	}
	return c.Topics.Validate()
}

// LogValue logs where the process connects, with secrets redacted.
func (c KafkaConfig) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("brokers", strings.Join(c.Brokers, ",")),
		slog.String("client_id", c.ClientID),
		slog.Any("security", c.Security),
	)
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
		// Outputs are written in transactions (the feature stage is
		// exactly-once): every reader sees committed records only. A
		// caller may override it in more.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	}
	opts = append(opts, c.ClientOptions(log)...)
	return append(opts, more...)
}

// ClientOptions are the options every client of this config needs beyond
// its seed brokers: security, Extra and a fresh metrics hook. Clients built
// outside Opts (the Watermill publisher and subscriber) take these.
func (c *KafkaConfig) ClientOptions(log *slog.Logger) []kgo.Opt {
	return c.NamedClientOptions(log, "")
}

// NamedClientOptions is ClientOptions with the client's metrics labelled
// client=name (empty: derived from the client's group or topics).
func (c *KafkaConfig) NamedClientOptions(log *slog.Logger, name string) []kgo.Opt {
	opts := c.Security.opts(log)
	opts = append(opts, c.Extra...)
	if c.Metrics != nil {
		opts = append(opts, kgo.WithHooks(c.Metrics.hook(name)))
	}
	return opts
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
