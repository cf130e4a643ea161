package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/checkfor"
)

// TestRunAuthenticatesWithSCRAMFromTheEnvironment runs `driftline run`
// against a broker that requires SCRAM-SHA-512, with the credentials in the
// DRIFTLINE_KAFKA_* environment as the Kubernetes manifests pass them: the
// process becomes ready (it read the registry through SASL), serves the
// Kafka client metrics, stops cleanly, and never prints the password. With
// a wrong password it never becomes ready and says why.
func TestRunAuthenticatesWithSCRAMFromTheEnvironment(t *testing.T) {
	const secret = "scram-Pa55-never-printed"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(consumers.SASLScramSHA512, "driftline", secret))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	run := func(password string) (*exec.Cmd, *lockedBuffer, string) {
		metrics := "127.0.0.1:" + strconv.Itoa(freePort(t))
		cmd := exec.Command(binary, "run", "--roles=features,monitor,trainer", "--metrics-addr="+metrics, "--partitions=2")
		cmd.Env = append(os.Environ(),
			consumers.EnvKafkaBrokers+"="+c.ListenAddrs()[0],
			consumers.EnvKafkaSASLMechanism+"=SCRAM-SHA-512",
			consumers.EnvKafkaSASLUser+"=driftline",
			consumers.EnvKafkaSASLPassword+"="+password,
			consumers.EnvLogLevel+"=debug",
		)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			if cmd.ProcessState == nil {
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("driftline run output:\n%s", out.String())
			}
		})
		return cmd, out, metrics
	}
	get := func(addr, path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	cmd, out, addr := run(secret)
	checkfor.Until(t, 30*time.Second, "/readyz through SCRAM", func() bool { code, _ := get(addr, "/readyz"); return code == http.StatusOK })
	checkfor.Until(t, 10*time.Second, "kprom client metrics", func() bool {
		_, body := get(addr, "/metrics")
		return strings.Contains(body, "driftline_kafka_connects_total{client=")
	})
	// A stage stopped while it is still starting reports the cancellation:
	// stop once the feature stage runs.
	checkfor.Until(t, 20*time.Second, "the feature stage to run", func() bool {
		return strings.Contains(out.String(), "feature stage running")
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("driftline run did not exit cleanly: %v", err)
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("the SASL password is in the process output:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "sasl_password_set=true") || !strings.Contains(out.String(), "SCRAM-SHA-512") {
		t.Errorf("the process did not log its redacted security settings:\n%s", out.String())
	}

	// A wrong password: the process cannot provision or read the registry
	// and exits non-zero at start (kfake drops the connection; a real broker
	// answers SASL_AUTHENTICATION_FAILED), never ready.
	cmd, out, addr = run("wrong-" + secret)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err == nil {
			t.Fatal("driftline run with a wrong password exited 0")
		}
	case <-time.After(60 * time.Second):
		if code, _ := get(addr, "/readyz"); code == http.StatusOK {
			t.Fatal("ready with a wrong password")
		}
		t.Fatal("driftline run with a wrong password neither failed nor stopped in 60s")
	}
	if !strings.Contains(out.String(), "driftline run: cannot") {
		t.Errorf("the failure is not reported:\n%s", out.String())
	}
	if strings.Contains(out.String(), secret) {
		t.Fatalf("the SASL password is in the process output:\n%s", out.String())
	}
}

// lockedBuffer collects a subprocess's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
