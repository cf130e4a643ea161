// Package chtest gives tests a real ClickHouse server: the one `make test`
// starts through deploy/scripts/clickhouse.sh (its DSN in
// DRIFTLINE_CLICKHOUSE_DSN), a fresh database per test on it, or a private
// server of the test's own that it may stop and restart. Without the
// environment variable a test that needs ClickHouse is skipped, except under
// CI=true, where it fails: CI must never pass by skipping. Test-only.
package chtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// EnvDSN names the environment variable with the shared server's DSN.
const EnvDSN = "DRIFTLINE_CLICKHOUSE_DSN"

// DSN returns the shared server's DSN, or skips (fails under CI=true).
func DSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(EnvDSN)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set under CI=true: run the tests through `make test`, which starts ClickHouse", EnvDSN)
		}
		tb.Skipf("needs ClickHouse: %s is not set (make test starts one: deploy/scripts/clickhouse.sh)", EnvDSN)
	}
	return dsn
}

// Conn opens a connection to dsn, closed when the test ends.
func Conn(tb testing.TB, dsn string) driver.Conn {
	tb.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

var seq atomic.Int64

// Database returns the name of a database no other test uses, dropped when
// the test ends (kept for a look when DRIFTLINE_CLICKHOUSE_KEEP is set).
func Database(tb testing.TB, conn driver.Conn) string {
	tb.Helper()
	name := fmt.Sprintf("t_%d_%d", os.Getpid(), seq.Add(1))
	tb.Cleanup(func() {
		if os.Getenv("DRIFTLINE_CLICKHOUSE_KEEP") != "" {
			tb.Logf("keeping database %s (DRIFTLINE_CLICKHOUSE_KEEP is set)", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
			tb.Logf("cannot drop database %s: %v", name, err)
		}
	})
	return name
}

// Count returns SELECT count() FROM db.table FINAL WHERE <where>: the rows
// left once redelivered duplicates are collapsed.
func Count(tb testing.TB, conn driver.Conn, query string) uint64 {
	tb.Helper()
	var n uint64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// Server is a private ClickHouse server of one test, started through the
// repo's script in its own directory and ports, so the test can stop and
// restart it without hurting others.
type Server struct {
	DSN    string
	dir    string
	script string
	tb     testing.TB
}

// Start starts a private server, stopped when the test ends. It needs the
// same environment as DSN (the shared server proves ClickHouse is
// installed).
func Start(tb testing.TB) *Server {
	tb.Helper()
	DSN(tb)
	s := &Server{dir: tb.TempDir(), script: filepath.Join(repoRoot(tb), "deploy", "scripts", "clickhouse.sh"), tb: tb}
	tb.Cleanup(func() { _ = s.run("stop") })
	if err := s.Start(); err != nil {
		tb.Fatal(err)
	}
	return s
}

// Start starts (or restarts) the server on its ports and data.
func (s *Server) Start() error {
	out, err := s.output("start")
	if err != nil {
		return err
	}
	s.DSN = strings.TrimSpace(out)
	return nil
}

// Stop stops the server by PID: SIGTERM, SIGKILL after 5 s.
func (s *Server) Stop() error { return s.run("stop") }

func (s *Server) run(cmd string) error {
	_, err := s.output(cmd)
	return err
}

func (s *Server) output(cmd string) (string, error) {
	c := exec.Command("bash", s.script, cmd, s.dir)
	var stderr strings.Builder
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		return "", fmt.Errorf("cannot %s private ClickHouse: %w: %s", cmd, err, stderr.String())
	}
	return string(out), nil
}

func repoRoot(tb testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("cannot find the repository root (go.mod) above the test")
		}
		dir = parent
	}
}
