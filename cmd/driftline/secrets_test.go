package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/driftline/driftline/consumers"
)

// A mistyped flag prints the usage of `run`; secrets that the environment
// holds must not appear in it (they once did, as flag defaults).
func TestRunUsageNeverPrintsSecretsFromTheEnvironment(t *testing.T) {
	const dsnSecret, hookSecret = "S3CRET-DSN-PW", "T000-B000-HOOKSECRET"
	cmd := exec.Command(binary, "run", "--no-such-flag")
	cmd.Env = append(os.Environ(),
		consumers.EnvClickHouseDSN+"=clickhouse://driftline:"+dsnSecret+"@ch:9440/db?secure=true",
		consumers.EnvAlertWebhook+"=https://hooks.example.com/services/"+hookSecret,
	)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatal("run accepted an unknown flag")
	}
	if !strings.Contains(string(out), "-clickhouse") {
		t.Fatalf("expected the usage of run, got:\n%s", out)
	}
	for _, secret := range []string{dsnSecret, hookSecret} {
		if strings.Contains(string(out), secret) {
			t.Errorf("the usage text prints %q:\n%s", secret, out)
		}
	}
}
