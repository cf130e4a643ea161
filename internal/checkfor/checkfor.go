// Package checkfor is the one way Driftline's tests wait for something to
// happen: poll a condition until it holds or a deadline passes (NATS's
// checkFor), never a bare time.Sleep. Test-only by convention.
package checkfor

import (
	"testing"
	"time"
)

// Until polls cond every 20 ms until it returns true, failing the test
// after d with what it was waiting for.
func Until(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
