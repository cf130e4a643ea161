package features

import (
	"strings"
	"testing"
	"time"
)

// Negative durations are refused with the setting named; zero means the
// default.
func TestConfigValidateNamesBadDurations(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{IdleTimeout: -time.Second}, "idle_timeout"},
		{Config{FlushTimeout: -time.Second}, "flush_timeout"},
		{Config{RestoreTimeout: -time.Minute}, "restore_timeout"},
		{Config{SessionGap: -time.Minute}, "session_gap"},
		{Config{AllowedLateness: -time.Minute}, "allowed_lateness"},
		// Above the client's 1 GiB limit on one response, creating the
		// client would fail after the config was accepted.
		{Config{FetchMaxBytes: 1<<30 + 1}, "fetch_max_bytes"},
		{Config{FetchMaxBytes: 512}, "fetch_max_bytes"},
	} {
		c.cfg.setDefaults()
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want one naming %s", c.want, err, c.want)
		}
	}
	var ok Config
	ok.setDefaults()
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}
