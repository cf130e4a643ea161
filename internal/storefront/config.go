package storefront

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Scenario names a drift scenario: what changes from Config.ShiftAt on.
type Scenario string

// The drift scenarios.
const (
	// ScenarioNone: the world never changes.
	ScenarioNone Scenario = "none"
	// ScenarioCovariate: prices x1.8, traffic moves to mobile and social;
	// the purchase rule stays the same.
	ScenarioCovariate Scenario = "covariate"
	// ScenarioConcept: traffic stays the same; the purchase rule changes.
	ScenarioConcept Scenario = "concept"
	// ScenarioBoth: covariate and concept shift at once.
	ScenarioBoth Scenario = "both"
)

// Scenarios lists every scenario, for flag help and validation.
func Scenarios() []Scenario {
	return []Scenario{ScenarioNone, ScenarioCovariate, ScenarioConcept, ScenarioBoth}
}

// ParseScenario returns the scenario named s ("" means ScenarioNone).
func ParseScenario(s string) (Scenario, error) {
	if s == "" {
		return ScenarioNone, nil
	}
	for _, sc := range Scenarios() {
		if string(sc) == s {
			return sc, nil
		}
	}
	return "", fmt.Errorf("storefront: unknown scenario %q (want none, covariate, concept or both)", s)
}

func (sc Scenario) covariate() bool { return sc == ScenarioCovariate || sc == ScenarioBoth }
func (sc Scenario) concept() bool   { return sc == ScenarioConcept || sc == ScenarioBoth }

// Defaults applied by Config.Validate to zero fields.
const (
	DefaultUsers             = 2000
	DefaultSessionsPerMinute = 120.0
	DefaultChurn             = 0.5
)

// DefaultStart is the event time of the first simulated minute when
// Config.Start is zero: 2026-11-23T00:00:00Z.
var DefaultStart = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

// Limits checked by Config.Validate.
const (
	MaxUsers             = 10_000_000
	MaxSessionsPerMinute = 1_000_000.0
)

// Config describes a simulated storefront. The zero value is usable after
// Validate: 20000 users, 120 sessions per minute from DefaultStart, no drift.
type Config struct {
	// Seed seeds the random source; the same Config gives the same events.
	Seed uint64
	// Start is the event time at which the simulation begins (truncated to
	// the millisecond); zero means DefaultStart. Timestamps are always
	// written in UTC.
	Start time.Time
	// Users is the size of the user pool (ids u-0 … u-<Users-1>); users
	// return for new sessions. Zero means DefaultUsers.
	Users int
	// SessionsPerMinute is the mean number of sessions starting per minute
	// of event time (a Poisson process). Zero means DefaultSessionsPerMinute.
	SessionsPerMinute float64
	// Churn is the probability that, when a user slot is drawn for a new
	// session, its previous user has left and a new user (fresh id, device
	// and country, no history) takes the slot. It keeps the distribution of
	// user-history features (sessions, purchases) stationary: without it a
	// fixed pool only ever accumulates history and a monitor would see
	// drift where nothing changed. Zero means DefaultChurn; negative means
	// no churn.
	Churn float64
	// Scenario is the drift scenario; "" means ScenarioNone.
	Scenario Scenario
	// ShiftAt is the event-time offset from Start at which the scenario's
	// shift begins; sessions starting at or after Start+ShiftAt are shifted.
	// Zero means shifted from the start. Truncated to the millisecond.
	// Ignored for ScenarioNone.
	ShiftAt time.Duration
}

// Validate fills zero fields with their defaults and reports the first
// invalid field.
func (c *Config) Validate() error {
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.Truncate(time.Millisecond)
	c.ShiftAt = c.ShiftAt.Truncate(time.Millisecond)
	if c.Users == 0 {
		c.Users = DefaultUsers
	}
	if c.SessionsPerMinute == 0 {
		c.SessionsPerMinute = DefaultSessionsPerMinute
	}
	switch {
	case c.Churn == 0:
		c.Churn = DefaultChurn
	case c.Churn < 0:
		c.Churn = 0
	case c.Churn >= 1 || math.IsNaN(c.Churn):
		return fmt.Errorf("storefront: churn: must be < 1, got %g", c.Churn)
	}
	sc, err := ParseScenario(string(c.Scenario))
	if err != nil {
		return err
	}
	c.Scenario = sc
	switch {
	case c.Users < 0 || c.Users > MaxUsers:
		return fmt.Errorf("storefront: users: must be in 1..%d, got %d", MaxUsers, c.Users)
	case math.IsNaN(c.SessionsPerMinute) || c.SessionsPerMinute < 0 || c.SessionsPerMinute > MaxSessionsPerMinute:
		return fmt.Errorf("storefront: sessions per minute: must be in (0, %g], got %g", MaxSessionsPerMinute, c.SessionsPerMinute)
	case c.ShiftAt < 0:
		return fmt.Errorf("storefront: shift at: must be >= 0, got %s", c.ShiftAt)
	case c.Start.Year() < 1970 || c.Start.Year() > 9000:
		return errors.New("storefront: start: must be between 1970 and 9000")
	}
	return nil
}
