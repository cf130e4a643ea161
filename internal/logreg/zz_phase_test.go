package logreg

import (
	"os"
	"testing"
	"time"
)

func TestZZPhases(t *testing.T) {
	path := os.Getenv("DRIFTLINE_TRAIN_FILE")
	if path == "" {
		t.Skip()
	}
	X, y, _ := readTrainBinary(path)
	for rep := 0; rep < 3; rep++ {
		cfg := Config{L2: 1, MaxIter: 100, Tol: 1e-10, Workers: 2}
		t0 := time.Now()
		d := len(X[0])
		m := &Model{Mean: make([]float64, d), Std: make([]float64, d), L2: cfg.L2}
		standardisation(X, m.Mean, m.Std)
		t1 := time.Now()
		p := newProblem(X, y, m.Mean, m.Std, cfg)
		t2 := time.Now()
		dim := p.dim
		scratch := make([]float64, (len(p.parts)-1)*(1+dim+dim*dim))
		e := newEval(dim)
		theta := make([]float64, dim)
		p.evaluate(theta, e, scratch)
		t3 := time.Now()
		_, it, _ := p.newton()
		t4 := time.Now()
		t.Logf("std %v newProblem %v one-eval %v newton(%d) %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), it, t4.Sub(t3))
	}
}
