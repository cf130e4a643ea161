package chsink

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

func TestConfigValidate(t *testing.T) {
	f := func(mutate func(*Config), wantErr string) {
		t.Helper()
		c := Config{DSN: "clickhouse://127.0.0.1:9000"}
		mutate(&c)
		c.setDefaults()
		err := c.Validate()
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("unexpected error: %v", err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("error %v, want one containing %q", err, wantErr)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) { c.DSN = "" }, "DSN is required")
	f(func(c *Config) { c.Database = "drop table x" }, "database")
	f(func(c *Config) { c.Database = "1abc" }, "database")
	f(func(c *Config) { c.BatchRows = -1 }, "batch_rows")
	f(func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Second, time.Millisecond }, "max_backoff")
	f(func(c *Config) { c.BatchInterval = -time.Second }, "batch_interval")
}

// The password in a DSN never reaches a log line or an error.
func TestDSNPasswordIsRedacted(t *testing.T) {
	const secret = "s3cret-Pa55"
	dsn := "clickhouse://driftline:" + secret + "@ch.example:9440/x?secure=true"
	c := Config{DSN: dsn}
	c.setDefaults()
	if got := c.LogValue().String(); strings.Contains(got, secret) || !strings.Contains(got, "ch.example:9440") {
		t.Errorf("LogValue = %s", got)
	}
	if got := RedactDSN(dsn); strings.Contains(got, secret) {
		t.Errorf("RedactDSN = %s", got)
	}
	// clickhouse-go also takes credentials as query parameters.
	inQuery := "clickhouse://ch.example:9000/db?username=u&password=" + secret + "&secure=true"
	if got := RedactDSN(inQuery); strings.Contains(got, secret) || !strings.Contains(got, "secure=true") {
		t.Errorf("RedactDSN of a DSN with the password in its query = %s", got)
	}
	if got := (&Config{DSN: inQuery}).LogValue().String(); strings.Contains(got, secret) {
		t.Errorf("LogValue of a DSN with the password in its query = %s", got)
	}
	bad := Config{DSN: "clickhouse://u:" + secret + "@host:notaport"}
	bad.setDefaults()
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Validate of a bad DSN = %v", err)
	}
}

// New refuses to build a sink whose column lists differ from the DDL; it
// succeeding here means every table's insert names exactly the DDL's
// columns.
func TestSinkWritesExactlyTheDDLColumns(t *testing.T) {
	kafka := consumers.KafkaConfig{Brokers: []string{"127.0.0.1:1"}}
	s, err := New(Config{DSN: "clickhouse://127.0.0.1:1"}, kafka, quiet, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if len(s.b.tables) != len(allTables) {
		t.Fatalf("sink writes %d tables, metrics know %d", len(s.b.tables), len(allTables))
	}
	for i, tb := range s.b.tables {
		if tb.name != allTables[i] {
			t.Errorf("table %d is %s, metrics list %s", i, tb.name, allTables[i])
		}
	}
	broken := newEventRows()
	broken.str("not_in_ddl")
	if err := sameColumns(broken.table, schemas.ClickHouseTables()[TableEvents]); err == nil {
		t.Error("sameColumns accepted a table with columns the DDL lacks")
	}
}
