package storefront

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/driftline/driftline/schemas"
)

func TestTune(t *testing.T) {
	for _, sc := range []Scenario{ScenarioNone, ScenarioConcept, ScenarioCovariate} {
		cfg := Config{Seed: 7, Scenario: sc, ShiftAt: 200 * time.Minute}
		f := newFeaturizer()
		s, _ := New(cfg)
		f.sim = s
		end := s.Now().Add(400 * time.Minute)
		s.Advance(end, func(e *schemas.Event) { f.event(e) })
		st := s.Stats()
		t.Logf("%s: %+v", sc, st)
		t.Logf("cart/session %.3f purchase/cart %.3f events/session %.1f", float64(st.CartSessions)/float64(st.Sessions), float64(st.Purchases)/float64(st.CartSessions), float64(st.Events)/float64(st.Sessions))
		rows := f.labelled()
		shift := s.cfg.Start.Add(cfg.ShiftAt).UnixMilli()
		pre, post := split(rows, shift)
		a, b := split(pre, s.cfg.Start.Add(100*time.Minute).UnixMilli())
		m := fitLogReg(a)
		t.Logf("pre rows %d pos %.3f  in-sample AUC %.3f holdout AUC %.3f w=%.2f", len(pre), mean(pre), auc(m, a), auc(m, b), m.w)
		c, d := split(post, s.cfg.Start.Add(300*time.Minute).UnixMilli())
		m2 := fitLogReg(c)
		t.Logf("post rows %d pos %.3f old-model AUC %.3f retrained AUC %.3f", len(post), mean(post), auc(m, d), auc(m2, d))
	}
}

func mean(rows []row) float64 {
	s := 0.0
	for _, r := range rows {
		s += r.label
	}
	return s / float64(len(rows))
}

func init() {
	if v := os.Getenv("SIG"); v != "" {
		signal, _ = strconv.ParseFloat(v, 64)
		baseRule.intercept, _ = strconv.ParseFloat(os.Getenv("BI"), 64)
		conceptRule.intercept, _ = strconv.ParseFloat(os.Getenv("CI"), 64)
	}
}
