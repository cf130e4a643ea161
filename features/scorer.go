package features

import (
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/schemas"
)

// served is a model version ready to score.
type served struct {
	version *schemas.ModelVersion
	model   *logreg.Model
}

// Scorer scores vectors with the current champion. Swap replaces the model
// with one atomic pointer store, so scoring never pauses and never sees a
// half-installed model.
type Scorer struct {
	spec    Spec
	current atomic.Pointer[served]
}

// NewScorer returns a scorer for a spec, with no model yet.
func NewScorer(spec Spec) *Scorer { return &Scorer{spec: spec} }

// Swap installs a version. It refuses one whose feature list differs from
// the spec's, since its weights would be applied to the wrong inputs.
func (s *Scorer) Swap(v *schemas.ModelVersion) error {
	if v.Model != s.spec.Name {
		return fmt.Errorf("cannot serve %s/v%d with the %s scorer", v.Model, v.Version, s.spec.Name)
	}
	if !slices.Equal(v.Features, s.spec.Features) {
		return fmt.Errorf("cannot serve %s/v%d: its features %v differ from the spec's %v", v.Model, v.Version, v.Features, s.spec.Features)
	}
	m, err := logreg.ModelFromVersion(v)
	if err != nil {
		return fmt.Errorf("cannot serve %s/v%d: %w", v.Model, v.Version, err)
	}
	s.current.Store(&served{version: v, model: m})
	return nil
}

// Version returns the version being served, 0 if none.
func (s *Scorer) Version() int {
	if c := s.current.Load(); c != nil {
		return c.version.Version
	}
	return 0
}

// Score returns the champion's score for x and its version; ok is false
// when there is no champion yet.
func (s *Scorer) Score(x []float64) (score float64, version int, ok bool) {
	c := s.current.Load()
	if c == nil {
		return 0, 0, false
	}
	return c.model.Predict(x), c.version.Version, true
}
