package chsink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// DefaultGroup is the sink's consumer group unless configured.
const DefaultGroup = "driftline-sink"

// Config configures the sink.
type Config struct {
	// DSN of the ClickHouse server, native protocol:
	// clickhouse://user:password@host:9000?secure=true (TLS with secure,
	// credentials in the DSN; they are never logged). Required.
	DSN string `yaml:"dsn"`
	// Database the tables live in; created when missing. Default
	// "driftline".
	Database string `yaml:"database"`
	// Group is the Kafka consumer group of the sink replicas. Default
	// "driftline-sink".
	Group string `yaml:"group"`
	// BatchRows sends a table's batch once it holds this many rows. Default
	// 100000.
	BatchRows int `yaml:"batch_rows"`
	// BatchInterval sends every pending batch at least this often. Default
	// 1s.
	BatchInterval time.Duration `yaml:"batch_interval"`
	// InsertTimeout bounds one INSERT. Default 60s.
	InsertTimeout time.Duration `yaml:"insert_timeout"`
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// batch (doubling). Defaults 100ms and 5s.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// ShutdownTimeout is how long a stopping sink keeps trying to write its
	// pending batches before it gives up (their offsets stay uncommitted and
	// the records are read again after a restart). Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
}

func (c *Config) setDefaults() {
	if c.Database == "" {
		c.Database = "driftline"
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.BatchRows == 0 {
		c.BatchRows = 100_000
	}
	if c.BatchInterval == 0 {
		c.BatchInterval = time.Second
	}
	if c.InsertTimeout == 0 {
		c.InsertTimeout = 60 * time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
}

// Validate reports a config that cannot work.
func (c *Config) Validate() error {
	if c.DSN == "" {
		return errors.New("sink: a ClickHouse DSN is required (--clickhouse)")
	}
	if _, err := clickhouse.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("sink: cannot parse ClickHouse DSN %s: %w", RedactDSN(c.DSN), err)
	}
	if !validName(c.Database) {
		return fmt.Errorf("sink: database %q: use letters, digits and _", c.Database)
	}
	if c.BatchRows < 1 {
		return fmt.Errorf("sink: batch_rows must be >= 1, got %d", c.BatchRows)
	}
	for name, d := range map[string]time.Duration{
		"batch_interval": c.BatchInterval, "insert_timeout": c.InsertTimeout,
		"min_backoff": c.MinBackoff, "max_backoff": c.MaxBackoff, "shutdown_timeout": c.ShutdownTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("sink: %s must be > 0, got %s", name, d)
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		return fmt.Errorf("sink: max_backoff %s is below min_backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	return nil
}

// LogValue logs the config with the DSN's password redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dsn", RedactDSN(c.DSN)),
		slog.String("database", c.Database),
		slog.String("group", c.Group),
		slog.Int("batch_rows", c.BatchRows),
		slog.Duration("batch_interval", c.BatchInterval),
	)
}

// RedactDSN returns the DSN with its password replaced, for logs and
// errors.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable DSN>"
	}
	// clickhouse-go also reads credentials from the query string.
	q := u.Query()
	for k := range q {
		switch strings.ToLower(k) {
		case "password", "http_proxy", "secret", "token":
			q.Set(k, "xxxxx")
		}
	}
	u.RawQuery = q.Encode()
	return u.Redacted()
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
