package trainers

import (
	"context"
	"testing"
	"time"
)

// A contract trainer that forks and hangs is killed with its children at
// the timeout: Fit returns promptly instead of waiting for the orphans.
func TestContractTrainerTimeoutKillsItsChildren(t *testing.T) {
	cmd := Command{Command: []string{"sh", "-c", "sleep 30 & sleep 30"}, Timeout: 300 * time.Millisecond}
	start := time.Now()
	_, err := cmd.Fit(context.Background(), 1, [][]float64{{1}, {2}}, []float64{0, 1})
	if err == nil {
		t.Fatal("a trainer that never writes its model succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Fit returned after %v: the forked child kept it waiting past the timeout", d)
	}
}
