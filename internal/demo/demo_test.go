package demo

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
)

// TestDemoClosesTheLoop runs the demo as `driftline demo` does: a shift is
// injected, and the run must end with a drift alert, a retrain, a new
// champion serving and its accuracy better than the old champion's after
// the shift.
func TestDemoClosesTheLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo runs ~30 s of simulated storefront")
	}
	var out bytes.Buffer
	sum, err := Run(context.Background(), Config{Out: &out}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Logf("timeline:\n%s", out.String())
	if err != nil {
		t.Fatalf("demo failed: %v", err)
	}
	if !sum.LoopClosed || sum.Alerts == 0 || sum.Retrains < 2 || sum.ChampionVersion < 2 {
		t.Errorf("summary = %+v", sum)
	}
	if sum.DLQ == 0 || sum.Events < 100_000 {
		t.Errorf("events %d dead-lettered %d: the demo must push real traffic and some bad records", sum.Events, sum.DLQ)
	}
	if !(sum.AUCBeforeShift > 0.7 && sum.AUCAfterShift < sum.AUCBeforeShift-0.15 && sum.AUCAfterRetrain > sum.AUCAfterShift+0.15) {
		t.Errorf("AUC before %.3f, after shift %.3f, after retrain %.3f: the shift must hurt and the retrain must recover",
			sum.AUCBeforeShift, sum.AUCAfterShift, sum.AUCAfterRetrain)
	}
	if sum.RetrainLoopSeconds <= 0 {
		t.Errorf("retrain loop time not measured: %+v", sum)
	}
	for _, want := range []string{"ALERT drift", "retrain requested", "scorer hot-swapped", "new champion v", "loop closed"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("timeline lacks %q", want)
		}
	}
}
