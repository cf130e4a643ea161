package features

import (
	"fmt"
	"time"

	"github.com/driftline/driftline/features/window"
	"github.com/driftline/driftline/schemas"
)

// Spec describes one model the stage serves: which events trigger a
// vector, which features it holds (names of the feature definitions:
// features/window/purchase_propensity.yaml or Config.FeaturesFile), and the horizon
// within which a purchase of the session makes the label positive.
type Spec struct {
	Name     string        `yaml:"name"`
	Triggers []string      `yaml:"triggers"`
	Horizon  time.Duration `yaml:"horizon"`
	Features []string      `yaml:"features"`
}

// PurchasePropensity is the first model: on every cart event, the
// probability that the session buys within 30 minutes of event time.
func PurchasePropensity() Spec {
	return Spec{
		Name:     "purchase_propensity",
		Triggers: []string{schemas.AddToCart, schemas.CheckoutStart},
		Horizon:  30 * time.Minute,
		Features: window.PurchasePropensity().Names(),
	}
}

// Validate reports unknown features and empty fields.
func (s *Spec) Validate() error {
	if s.Name == "" {
		return fmt.Errorf("model spec: name is required")
	}
	if len(s.Triggers) == 0 {
		return fmt.Errorf("model spec %s: at least one trigger event type is required", s.Name)
	}
	for _, t := range s.Triggers {
		if schemas.TopicOf(t) == "" {
			return fmt.Errorf("model spec %s: trigger %q is not a storefront event type", s.Name, t)
		}
	}
	if s.Horizon <= 0 {
		return fmt.Errorf("model spec %s: horizon must be > 0, got %s", s.Name, s.Horizon)
	}
	if len(s.Features) == 0 {
		return fmt.Errorf("model spec %s: at least one feature is required", s.Name)
	}
	seen := map[string]bool{}
	for _, f := range s.Features {
		if seen[f] {
			return fmt.Errorf("model spec %s: feature %q listed twice", s.Name, f)
		}
		seen[f] = true
	}
	return nil // the names are checked against the feature definitions by New
}

func (s *Spec) triggers(eventType string) bool {
	for _, t := range s.Triggers {
		if t == eventType {
			return true
		}
	}
	return false
}
