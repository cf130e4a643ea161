package monitors

// Drift statistics beyond PSI, each matching a SciPy function (SciPy 1.10,
// the Debian bookworm python3-scipy the reference values in
// testdata/drift/cases.json were generated with) and, where Evidently wraps
// one as a drift test, Evidently's use of it. They are pure functions:
// the Monitor picks which to run and owns the windows.

import (
	"math"
	"slices"
)

// KSAutoExactMaxN is the largest sample size for which KS computes the exact
// p-value; above it (in either sample) it uses the asymptotic one. It is
// MAX_AUTO_N of scipy.stats.ks_2samp, which method='auto' switches on.
const KSAutoExactMaxN = 10000

// WassersteinNormFloor is the smallest standard deviation
// NormalizedWasserstein divides by, so that a constant reference does not
// make every shift infinite. It is the 0.001 of Evidently's
// "Wasserstein distance (normed)".
const WassersteinNormFloor = 0.001

// KS returns the two-sample Kolmogorov–Smirnov test of current against
// reference, as scipy.stats.ks_2samp(reference, current) with its defaults
// (alternative='two-sided', method='auto'):
//
//	D = max_x |F_ref(x) - F_cur(x)|
//
// over the empirical CDFs (right-continuous, so ties are handled as SciPy
// does). The p-value P(D_{n1,n2} >= D) under the null hypothesis of one
// distribution is
//
//   - exact when max(n1, n2) <= KSAutoExactMaxN: the lattice-path count of
//     Hodges (1958), computed as SciPy does (_compute_prob_outside_square
//     for n1 == n2, _compute_outer_prob_inside_method otherwise), with the
//     same floating-point operations. Unequal sizes cost
//     O(max(n1,n2)·min(n1,n2)·D) dependent divisions — about 20 ms for 10000
//     against 5000 at D = 0.03 (BenchmarkKS) — and the statistic is returned
//     as h/lcm(n1,n2), the rational the path count uses, as SciPy returns it.
//   - asymptotic otherwise (and, as in SciPy, should the exact count fail
//     to give a probability): scipy.stats.kstwo.sf(D, round(n1·n2/(n1+n2))),
//     the exact distribution of the one-sample statistic D_n evaluated at the
//     effective sample size, computed by the method Simard and L'Ecuyer
//     (2011) choose per region, as scipy.stats._ksstats._kolmogn does
//     (Durbin/Marsaglia–Tsang–Wang matrix, Pomeranz recursion, Pelz–Good
//     series, or twice the one-sided Smirnov tail).
//
// KS sorts copies of its inputs; use a KSScratch to reuse the buffers. It
// returns NaN, NaN when either sample is empty (SciPy raises) or holds a
// NaN (SciPy 1.10 sorts NaN last and returns a meaningless number).
func KS(reference, current []float64) (statistic, pValue float64) {
	var s KSScratch
	return s.KS(reference, current)
}

// KSScratch holds the buffers KS needs, so that repeated tests allocate
// nothing once the buffers have grown to the largest samples seen. The zero
// value is ready to use; a KSScratch must not be used concurrently.
type KSScratch struct {
	ref, cur []float64
	work     []float64
}

// KS is the package-level KS using s's buffers.
func (s *KSScratch) KS(reference, current []float64) (statistic, pValue float64) {
	s.ref = append(s.ref[:0], reference...)
	s.cur = append(s.cur[:0], current...)
	slices.Sort(s.ref)
	slices.Sort(s.cur)
	return s.KSSorted(s.ref, s.cur)
}

// KSSorted is KS for samples already sorted in ascending order, which it
// does not modify: the online monitor sorts the reference once and keeps
// it. Unsorted input gives a wrong answer, not an error.
func (s *KSScratch) KSSorted(reference, current []float64) (statistic, pValue float64) {
	n1, n2 := len(reference), len(current)
	if n1 == 0 || n2 == 0 || sampleHasNaN(reference) || sampleHasNaN(current) {
		return math.NaN(), math.NaN()
	}
	d := ksStatistic(reference, current)
	return s.ksPValue(n1, n2, d)
}

// sampleHasNaN reports whether x holds a NaN.
func sampleHasNaN(x []float64) bool {
	for _, v := range x {
		if v != v {
			return true
		}
	}
	return false
}

// nextValue is the smallest value not yet passed when walking two sorted
// samples together, a from i and b from j (at least one not exhausted).
func nextValue(a, b []float64, i, j int) float64 {
	switch {
	case i == len(a):
		return b[j]
	case j == len(b):
		return a[i]
	}
	return min(a[i], b[j])
}

// ksStatistic returns max |F1 - F2| over the points of both sorted samples,
// each CDF value computed as count/n and subtracted as ks_2samp does, so the
// result is the same float.
func ksStatistic(a, b []float64) float64 {
	n1, n2 := float64(len(a)), float64(len(b))
	var maxS, minS float64 // max of F1-F2 and of F2-F1, both >= 0 at the end
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		x := nextValue(a, b, i, j)
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		diff := float64(i)/n1 - float64(j)/n2
		maxS = max(maxS, diff)
		minS = max(minS, -diff)
	}
	minS = min(minS, 1)
	if minS > maxS {
		return minS
	}
	return maxS
}

// ksPValue is the p-value part of scipy.stats.ks_2samp (two-sided,
// method='auto'); it returns the statistic too, since the exact path rounds
// it to h/lcm.
func (s *KSScratch) ksPValue(n1, n2 int, d float64) (float64, float64) {
	p := math.NaN()
	if max(n1, n2) <= KSAutoExactMaxN {
		// _attempt_exact_2kssamp
		g := ksGCD(n1, n2)
		lcm := float64(n1/g) * float64(n2)
		h := int(math.RoundToEven(d * lcm))
		d = float64(h) / lcm
		switch {
		case h == 0:
			return d, 1
		case n1 == n2:
			p = ksProbOutsideSquare(n1, h)
		default:
			p = s.ksOuterProbInside(n1, n2, g, h)
		}
	}
	if !(p >= 0 && p <= 1) { // not tried, or failed: SciPy falls back too
		m, n := float64(max(n1, n2)), float64(min(n1, n2))
		en := m * n / (m + n)
		p = s.kolmogorovSF(int(math.RoundToEven(en)), d)
	}
	return d, clipProb(p)
}

// ksGCD is the greatest common divisor of a and b.
func ksGCD(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// clipProb clips p to [0, 1], as SciPy clips every probability it returns.
func clipProb(p float64) float64 {
	return min(max(p, 0), 1)
}

// ksProbOutsideSquare is P(D_{n,n} >= h/n), SciPy's
// _compute_prob_outside_square: 2·Σ_k (-1)^k C(2n, n-kh)/C(2n, n) evaluated
// as a Horner-like product to avoid cancellation.
func ksProbOutsideSquare(n, h int) float64 {
	var p float64
	for k := n / h; k >= 0; k-- {
		p1 := 1.0
		for j := range h {
			p1 = float64(n-k*h-j) * p1 / float64(n+k*h+j+1)
		}
		p = p1 * (1 - p)
	}
	return 2 * p
}

// ksOuterProbInside is P(D_{m,n} >= h/lcm(m,n)) for m != n, SciPy's
// _compute_outer_prob_inside_method: Hodges' inside method with Viehmann's
// (2021) recursion for 1-p, one sliding column of the lattice at a time.
func (s *KSScratch) ksOuterProbInside(m, n, g, h int) float64 {
	if m < n {
		m, n = n, m
	}
	mg, ng := m/g, n/g
	minj, maxj := 0, min(int(math.Ceil(float64(h)/float64(mg))), n+1)
	curlen := maxj - minj
	lenA := min(2*maxj+2, n+1)
	a := s.grow(lenA)
	for i := range a {
		a[i] = 1
	}
	clear(a[minj:maxj])
	for i := 1; i <= m; i++ {
		lastminj, lastlen := minj, curlen
		minj = max(int(math.Floor(float64(ng*i-h)/float64(mg)))+1, 0)
		minj = min(minj, n)
		maxj = min(int(math.Ceil(float64(ng*i+h)/float64(mg))), n+1)
		if maxj <= minj {
			return 1
		}
		val := 1.0
		if minj == 0 {
			val = 0
		}
		fi := float64(i)
		for jj := range maxj - minj {
			j := float64(jj + minj)
			val = (a[jj+minj-lastminj]*fi + val*j) / (fi + j)
			a[jj] = val
		}
		curlen = maxj - minj
		if lastlen > curlen {
			for k := maxj - minj; k < maxj-minj+lastlen-curlen && k < len(a); k++ {
				a[k] = 1
			}
		}
	}
	return a[maxj-minj-1]
}

// grow returns s.work resized to n values (contents unspecified).
func (s *KSScratch) grow(n int) []float64 {
	if cap(s.work) < n {
		s.work = make([]float64, n)
	}
	return s.work[:n]
}

// kolmogorovSF is P(D_n >= x) for the one-sample two-sided KS statistic D_n
// of a sample of n, scipy.stats.kstwo.sf(x, n), following
// scipy.stats._ksstats._kolmogn(n, x, cdf=False) branch for branch.
func (s *KSScratch) kolmogorovSF(n int, x float64) float64 {
	if n < 1 || math.IsNaN(x) {
		return math.NaN()
	}
	if x >= 1 {
		return 0
	}
	fn := float64(n)
	if x <= 0.5/fn { // at or below the support of kstwo
		return 1
	}
	t := fn * x
	if t <= 1 { // Ruben–Gambino: 1/2n < x <= 1/n
		var cdf float64
		if n <= 140 {
			cdf = 1
			for i := 1; i <= n; i++ {
				cdf *= float64(i) * (1 / fn) * (2*t - 1)
			}
		} else {
			cdf = math.Exp(logFactorialOverPower(n) + fn*math.Log(2*t-1))
		}
		return clipProb(1 - cdf)
	}
	if t >= fn-1 { // Ruben–Gambino
		return clipProb(2 * math.Pow(1-x, fn))
	}
	if x >= 0.5 { // exact: the one-sided tails cannot overlap
		return clipProb(2 * smirnovSF(n, x))
	}
	nxx := t * x
	if n <= 140 {
		switch {
		case nxx <= 0.754693:
			return clipProb(1 - s.kolmogorovCDFDurbin(n, x))
		case nxx <= 4:
			return clipProb(1 - s.kolmogorovCDFPomeranz(n, x))
		default: // Miller's approximation, 2·smirnov
			return clipProb(2 * smirnovSF(n, x))
		}
	}
	if nxx >= 370 {
		return 0
	}
	if nxx >= 2.2 {
		return clipProb(2 * smirnovSF(n, x))
	}
	var cdf float64
	if n <= 100000 && fn*math.Pow(x, 1.5) <= 1.4 {
		cdf = s.kolmogorovCDFDurbin(n, x)
	} else {
		cdf = kolmogorovCDFPelzGood(n, x)
	}
	return clipProb(1 - cdf)
}

// logFactorialOverPower is log(n!/n^n) by Stirling's series with n·log(n)
// cancelled analytically (_log_nfactorial_div_n_pow_n).
func logFactorialOverPower(n int) float64 {
	// B_{2j}/(2j)/(2j-1) for j = 8 … 1.
	coeffs := [...]float64{-2.955065359477124183e-2, 6.4102564102564102564e-3,
		-1.9175269175269175269e-3, 8.4175084175084175084e-4,
		-5.952380952380952381e-4, 7.9365079365079365079e-4,
		-2.7777777777777777778e-3, 8.3333333333333333333e-2}
	fn := float64(n)
	rn := 1 / fn
	x := rn / fn
	var poly float64
	for _, c := range coeffs {
		poly = poly*x + c
	}
	return math.Log(fn)/2 - fn + math.Log(2*math.Pi)/2 + rn*poly
}

const (
	twoTo128      = 0x1p128
	twoToMinus128 = 0x1p-128
)

// kolmogorovCDFDurbin is P(D_n <= d) by Durbin's matrix algorithm in the
// form of Marsaglia, Tsang and Wang (2003) (_kolmogn_DMTW): the (k,k) entry
// of H^n·n!/n^n for an m×m matrix H, m = 2k-1, k = ⌈nd⌉, with power-of-two
// rescaling.
func (s *KSScratch) kolmogorovCDFDurbin(n int, d float64) float64 {
	if d >= 1 {
		return 1
	}
	fn := float64(n)
	nd := fn * d
	if nd <= 0.5 {
		return 0
	}
	k := int(math.Ceil(nd))
	h := float64(k) - nd
	m := 2*k - 1

	buf := s.grow(3*m*m + 2*m)
	hm, pw, tmp := buf[:m*m], buf[m*m:2*m*m], buf[2*m*m:3*m*m]
	v, w := buf[3*m*m:3*m*m+m], buf[3*m*m+m:]
	clear(hm)
	fac := 1.0
	for j := 1; j <= m; j++ {
		w[j-1] = fac
		fac /= float64(j)
		v[j-1] = (1 - math.Pow(h, float64(j))) * fac
	}
	tt := math.Pow(max(2*h-1, 0), float64(m)) - 2*math.Pow(h, float64(m))
	v[m-1] = (1 + tt) * fac
	for c := 1; c < m; c++ {
		for r := c - 1; r < m; r++ {
			hm[r*m+c] = w[r-c+1]
		}
	}
	for r := range m {
		hm[r*m] = v[r]
	}
	for c := range m {
		hm[(m-1)*m+c] = v[m-1-c]
	}

	clear(pw)
	for i := range m {
		pw[i*m+i] = 1
	}
	expnt, hexpnt := 0, 0
	for nn := n; nn > 0; nn /= 2 {
		if nn%2 == 1 {
			durbinMatMul(tmp, pw, hm, m)
			copy(pw, tmp)
			expnt += hexpnt
		}
		if nn/2 == 0 {
			break // the last square is never used
		}
		durbinMatMul(tmp, hm, hm, m)
		copy(hm, tmp)
		hexpnt *= 2
		if math.Abs(hm[(k-1)*m+k-1]) > twoTo128 {
			for i := range hm {
				hm[i] /= twoTo128
			}
			hexpnt += 128
		}
	}
	p := pw[(k-1)*m+k-1]
	for i := 1; i <= n; i++ {
		p = float64(i) * p / fn
		if math.Abs(p) < twoToMinus128 {
			p *= twoTo128
			expnt -= 128
		}
	}
	if expnt != 0 {
		p = math.Ldexp(p, expnt)
	}
	return clipProb(p)
}

// durbinMatMul sets c = a·b for m×m row-major matrices; c must not alias
// a or b.
func durbinMatMul(c, a, b []float64, m int) {
	for i := range m {
		ci := c[i*m : i*m+m]
		clear(ci)
		for k, aik := range a[i*m : i*m+m] {
			if aik == 0 {
				continue
			}
			for j, bkj := range b[k*m : k*m+m] {
				ci[j] += aik * bkj
			}
		}
	}
}

// kolmogorovCDFPomeranz is P(D_n <= x) by Pomeranz's (1974) recursion
// (_kolmogn_Pomeranz): 2n+1 convolutions of a short row with
// Poisson-like weights, then n!.
func (s *KSScratch) kolmogorovCDFPomeranz(n int, x float64) float64 {
	fn := float64(n)
	t := fn * x
	ll := int(math.Floor(t))
	f := t - float64(ll)
	g := min(f, 1-f)
	ceilf, roundf := 0, 0
	if f > 0 {
		ceilf = 1
	}
	if f > 0.5 {
		roundf = 1
	}
	np := 2 * (ll + 1)
	buf := s.grow(5 * np)
	gpow, twogpow, onem2gpow := buf[:np], buf[np:2*np], buf[2*np:3*np]
	v0, v1 := buf[3*np:4*np], buf[4*np:5*np]
	gpow[0], twogpow[0], onem2gpow[0] = 1, 1, 1
	gn, twogn, onem2gn := g/fn, 2*g/fn, (1-2*g)/fn
	for i := 1; i < np; i++ {
		fi := float64(i)
		gpow[i] = gpow[i-1] * gn / fi
		twogpow[i] = twogpow[i-1] * twogn / fi
		onem2gpow[i] = onem2gpow[i-1] * onem2gn / fi
	}
	clear(v0)
	clear(v1)
	v1[0] = 1
	v0s, v1s := 0, 0
	expnt := 0

	j1, _ := pomeranzJ1J2(0, n, ll, ceilf, roundf)
	for i := 1; i < 2*n+2; i++ {
		k1 := j1
		v0, v1 = v1, v0
		v0s, v1s = v1s, v0s
		clear(v1)
		var j2 int
		j1, j2 = pomeranzJ1J2(i, n, ll, ceilf, roundf)
		pwrs := onem2gpow
		switch {
		case i == 1 || i == 2*n+1:
			pwrs = gpow
		case i%2 == 1:
			pwrs = twogpow
		}
		ln2 := j2 - k1 + 1
		if ln2 <= 0 {
			continue
		}
		// conv = np.convolve(V0[k1-V0s : k1-V0s+ln2], pwrs[:ln2]);
		// V1[:j2-j1+1] = conv[j1-k1 : j2-k1+1]
		lo := k1 - v0s
		if lo < 0 || lo > np {
			return math.NaN() // never seen; SciPy would index from the end
		}
		src := v0[lo:min(lo+ln2, np)]
		p := pwrs[:ln2]
		vmax := 0.0
		for q := 0; q <= j2-j1; q++ {
			kk := q + j1 - k1
			var sum float64
			for a := max(0, kk-len(p)+1); a <= min(kk, len(src)-1); a++ {
				sum += src[a] * p[kk-a]
			}
			v1[q] = sum
			vmax = max(vmax, sum)
		}
		if vmax > 0 && vmax < twoToMinus128 {
			for q := range v1 {
				v1[q] *= twoTo128
			}
			expnt -= 128
		}
		v1s = v0s + j1 - k1
	}
	ans := v1[n-v1s]
	for m := 1; m <= n; m++ {
		if math.Abs(ans) > twoTo128 {
			ans *= twoToMinus128
			expnt += 128
		}
		ans *= float64(m)
	}
	if expnt != 0 {
		ans = math.Ldexp(ans, expnt)
	}
	return clipProb(ans)
}

// pomeranzJ1J2 is _pomeranz_compute_j1j2: the first and last non-zero
// column of row i.
func pomeranzJ1J2(i, n, ll, ceilf, roundf int) (int, int) {
	var j1, j2 int
	if i == 0 {
		j1, j2 = -ll-ceilf-1, ll+ceilf-1
	} else {
		half, odd := (i+1)/2, (i+1)%2
		switch {
		case odd == 0 && half == n+1:
			j1, j2 = n-ll-ceilf-1, n+ll+ceilf-1
		case odd == 0:
			j1, j2 = half-1-ll-roundf-1, half+ll-1+ceilf-1
		default:
			j1, j2 = half-1-ll-1, half+ll+roundf-1
		}
	}
	return max(j1+2, 0), min(j2, n)
}

// kolmogorovCDFPelzGood is the Pelz–Good (1976) approximation of
// P(D_n <= x) (_kolmogn_PelzGood): the Li-Chien/Korolyuk expansion
// K0 + K1/√n + K2/n + K3/n^1.5 in z = x√n, each term rewritten with Jacobi
// theta identities so that it converges fast for small z.
func kolmogorovCDFPelzGood(n int, x float64) float64 {
	if x <= 0 {
		return 0
	}
	if x >= 1 {
		return 1
	}
	const (
		pi2 = math.Pi * math.Pi
		pi4 = pi2 * pi2
		pi6 = pi4 * pi2
	)
	sqrt2pi := math.Sqrt(2 * math.Pi)
	fn := float64(n)
	z := math.Sqrt(fn) * x
	z2 := z * z
	z3, z4, z6 := z2*z, z2*z2, z2*z2*z2
	qlog := -pi2 / 8 / z2
	if qlog < -708 {
		return 0
	}
	q := math.Exp(qlog)

	k1a, k1b := -z2, pi2/4
	k2a := 6*z6 + 2*z4
	k2b := (2*z4 - 5*z2) * pi2 / 4
	k2c := pi4 * (1 - 2*z2) / 16
	k3d := pi6 * (5 - 30*z2) / 64
	k3c := pi4 * (-60*z2 + 212*z4) / 16
	k3b := pi2 * (135*z4 - 96*z6) / 4
	k3a := -30*z6 - 90*math.Pow(z, 8)

	var k0, k1, k2, k3 float64
	maxk := int(math.Ceil(16 * z / math.Pi))
	for k := maxk; k >= 1; k-- {
		m := float64(2*k - 1)
		m2 := m * m
		m4, m6 := m2*m2, m2*m2*m2
		qp := math.Pow(q, float64(8*k))
		k0 = k0*qp + 1
		k1 = k1*qp + (k1a + k1b*m2)
		k2 = k2*qp + (k2a + k2b*m2 + k2c*m4)
		k3 = k3*qp + (k3a + k3b*m2 + k3c*m4 + k3d*m6)
	}
	k0 = k0 * q * sqrt2pi / z
	k1 = k1 * q * sqrt2pi / (6 * z4)
	k2 = k2 * q * sqrt2pi / (72 * math.Pow(z, 7))
	k3 = k3 * q * sqrt2pi / (6480 * math.Pow(z, 10))

	q = math.Exp(-pi2 / 2 / z2)
	sqrt3z := math.Sqrt(3) * z
	var k2extra, k3extra float64
	for k := maxk; k >= 1; k-- {
		fk := float64(k)
		ksq := fk * fk
		qp := math.Pow(q, ksq)
		k2extra += ksq * qp
		kpi := math.Pi * fk
		k3extra += (sqrt3z + kpi) * (sqrt3z - kpi) * ksq * qp
	}
	k2 += k2extra * pi2 * sqrt2pi / (-36 * z3)
	k3 += k3extra * pi2 * sqrt2pi / (216 * z6)
	return k0 + k1/math.Pow(fn, 0.5) + k2/fn + k3/math.Pow(fn, 1.5)
}

// smirnovSF is P(D+_n >= x) for the one-sided KS statistic,
// scipy.special.smirnov(n, x): the Birnbaum–Tingey sum
//
//	x · Σ_{v=0}^{⌊n(1-x)⌋} C(n,v) (1-x-v/n)^(n-v) (x+v/n)^(v-1)
//
// with SciPy's special cases and its early stop. SciPy sums in
// double-double; here every term is positive and is evaluated in log space
// (n·x split exactly by FMA, log C(n,v) summed with compensation), which
// agrees with SciPy to about 1e-13 relative up to n = 300000.
func smirnovSF(n int, x float64) float64 {
	if !(n > 0 && x >= 0 && x <= 1) {
		return math.NaN()
	}
	fn := float64(n)
	switch {
	case n == 1:
		return 1 - x
	case x == 0:
		return 1
	case x == 1:
		return 0
	}
	// n·x = nxHi + nxLo exactly; nxfl = ⌊n·x⌋, alpha the fractional part.
	nxHi := fn * x
	nxLo := math.FMA(fn, x, -nxHi)
	fl := math.Floor(nxHi)
	alpha := (nxHi - fl) + nxLo
	if alpha < 0 {
		fl--
		alpha++
	}
	if alpha >= 1 {
		fl++
		alpha = 0
	}
	nxfl := int(fl)
	if nxfl == 0 || (nxfl == 1 && alpha == 0) { // x <= 1/n
		return clipProb(1 - x*math.Pow(1+x, fn-1))
	}
	const minLog = -7.451332191019412076235e2 // SciPy's cephes MINLOG, ln 2^-1075
	if -2*fn*x*x < minLog {
		return 0
	}
	if nxfl >= n-1 {
		return clipProb(math.Pow(1-x, fn))
	}
	if n > 1000000 { // SciPy's SMIRNOV_MAX_COMPUTE_N
		return math.Exp(-math.Pow(6*fn*x+1, 2) / 18 / fn)
	}
	nTerms := n - nxfl // v = 0 … n-⌊nx⌋-1, those with 1-x-v/n > 0
	// v = 0: (1-x)^n / x
	sum := math.Exp(fn*math.Log1p(-x)) / x
	// log C(n,v), summed with Neumaier's compensation: over thousands of
	// terms the plain running sum loses ~1e-9 relative at n = 300000.
	logC, logCErr := 0.0, 0.0
	for v := 1; v < nTerms; v++ {
		fv := float64(v)
		inc := math.Log((fn - fv + 1) / fv)
		sumC := logC + inc
		if math.Abs(logC) >= math.Abs(inc) {
			logCErr += (logC - sumC) + inc
		} else {
			logCErr += (inc - sumC) + logC
		}
		logC = sumC
		lo := ((fn - fv) - nxHi - nxLo) / fn // 1 - x - v/n
		hi := (fv + nxHi + nxLo) / fn        // x + v/n
		term := math.Exp(logC + logCErr + (fn-fv)*math.Log(lo) + (fv-1)*math.Log(hi))
		sum += term
		if term != 0 {
			if 4*float64(nTerms-v)*term < 0x1p-52*sum && v != nTerms-1 {
				break
			}
		} else if v > n/2 {
			break
		}
	}
	return clipProb(x * sum)
}

// JensenShannon returns the Jensen–Shannon distance between p and q, as
// scipy.spatial.distance.jensenshannon(p, q) with the natural logarithm:
//
//	JS(p, q) = √( (KL(p‖m) + KL(q‖m)) / 2 ),   m = (p + q)/2,
//
// after each vector is divided by its sum, with KL(a‖m) = Σ a_i ln(a_i/m_i)
// and 0·ln 0 = 0. It lies in [0, √ln 2 ≈ 0.8326]; Evidently's
// "Jensen-Shannon distance" is this value of the binned reference and
// current shares (default drift threshold 0.1). It returns NaN when the
// lengths differ, the vectors are empty, a value is NaN or a vector sums
// to 0, and +Inf for a negative entry, as SciPy's rel_entr makes it.
func JensenShannon(p, q []float64) float64 {
	if len(p) != len(q) || len(p) == 0 {
		return math.NaN()
	}
	var sp, sq float64
	for i := range p {
		sp += p[i]
		sq += q[i]
	}
	var left, right float64
	for i := range p {
		a, b := p[i]/sp, q[i]/sq
		m := (a + b) / 2
		left += relEntr(a, m)
		right += relEntr(b, m)
	}
	return math.Sqrt((left + right) / 2)
}

// JensenShannonBinned is JensenShannon of the bin fractions of a reference
// profile (schemas.FeatureProfile.Fractions) and of the current window
// binned with the same edges (profile.Bin). Fractions need not be
// renormalised, and an empty bin on either side is fine (0·ln 0 = 0), so
// unlike PSI no floor is applied.
func JensenShannonBinned(expectedFractions, actualFractions []float64) float64 {
	return JensenShannon(expectedFractions, actualFractions)
}

// relEntr is scipy.special.rel_entr: x·ln(x/y) for x, y > 0, 0 for x = 0
// and y >= 0, +Inf otherwise.
func relEntr(x, y float64) float64 {
	switch {
	case math.IsNaN(x) || math.IsNaN(y):
		return math.NaN()
	case x > 0 && y > 0:
		return x * math.Log(x/y)
	case x == 0 && y >= 0:
		return 0
	}
	return math.Inf(1)
}

// Wasserstein returns the first Wasserstein (earth mover's) distance
// between the empirical distributions of two samples, as
// scipy.stats.wasserstein_distance(reference, current):
//
//	W1 = ∫ |F_ref(x) - F_cur(x)| dx
//
// summed exactly over the gaps between consecutive pooled values. It is in
// the units of the data. It sorts copies of its inputs (see
// WassersteinSorted) and returns NaN when either sample is empty or holds a
// NaN.
func Wasserstein(reference, current []float64) float64 {
	a, b := slices.Clone(reference), slices.Clone(current)
	slices.Sort(a)
	slices.Sort(b)
	return WassersteinSorted(a, b)
}

// WassersteinSorted is Wasserstein for samples already sorted in ascending
// order; it does not allocate.
func WassersteinSorted(reference, current []float64) float64 {
	if len(reference) == 0 || len(current) == 0 || sampleHasNaN(reference) || sampleHasNaN(current) {
		return math.NaN()
	}
	a, b := reference, current
	n1, n2 := float64(len(a)), float64(len(b))
	var w float64
	i, j := 0, 0
	prev := min(a[0], b[0])
	for i < len(a) || j < len(b) {
		x := nextValue(a, b, i, j)
		if x > prev { // both CDFs are constant on [prev, x)
			w += math.Abs(float64(i)/n1-float64(j)/n2) * (x - prev)
		}
		prev = x
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
	}
	return w
}

// NormalizedWasserstein returns Wasserstein(reference, current) divided by
// the reference's population standard deviation (np.std, ddof = 0), floored
// at WassersteinNormFloor:
//
//	W1 / max(σ_ref, 0.001)
//
// which is Evidently's "Wasserstein distance (normed)" drift test
// (evidently.calculations.stattests.wasserstein_distance_norm; default
// threshold 0.1: drift when the distributions differ by a tenth of a
// reference standard deviation). NaN as Wasserstein.
func NormalizedWasserstein(reference, current []float64) float64 {
	w := Wasserstein(reference, current)
	if math.IsNaN(w) {
		return w
	}
	return w / max(populationStdDev(reference), WassersteinNormFloor)
}

// populationStdDev is np.std(x): the two-pass population standard deviation.
func populationStdDev(x []float64) float64 {
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return math.Sqrt(ss / float64(len(x)))
}

// ChiSquare returns Pearson's chi-square goodness-of-fit test of the
// current category counts against the reference counts, as Evidently's
// chi-square drift test computes it: the reference counts are scaled to the
// current total and passed to scipy.stats.chisquare as f_exp,
//
//	e_i = expected_i · Σobserved / Σexpected,
//	χ² = Σ_i (observed_i - e_i)² / e_i,   p = Q((k-1)/2, χ²/2),
//
// where k is the number of categories and Q the regularised upper
// incomplete gamma function (the chi-square survival function with k-1
// degrees of freedom, scipy.stats.chi2.sf). A category with zero count on
// both sides is left out of k, as Evidently never has one: it lists only
// the values seen in either sample. A category absent from the reference
// but present now makes χ² +Inf and p 0. With fewer than two categories the
// p-value is NaN (no degrees of freedom, as in SciPy); it is NaN, NaN when
// the lengths differ, a total is 0, or a count is negative or NaN.
//
// The bins of a reference profile work as categories: pass the profile's
// fractions times its row count, or the fractions themselves, since only
// their proportions matter.
func ChiSquare(expectedCounts, observedCounts []float64) (statistic, pValue float64) {
	if len(expectedCounts) != len(observedCounts) || len(expectedCounts) == 0 {
		return math.NaN(), math.NaN()
	}
	var se, so float64
	for i, e := range expectedCounts {
		o := observedCounts[i]
		if !(e >= 0) || !(o >= 0) {
			return math.NaN(), math.NaN()
		}
		se += e
		so += o
	}
	if se == 0 || so == 0 || math.IsInf(se, 0) || math.IsInf(so, 0) {
		return math.NaN(), math.NaN()
	}
	scale := so / se
	k := 0
	var stat float64
	for i, e := range expectedCounts {
		o := observedCounts[i]
		if e == 0 && o == 0 {
			continue
		}
		k++
		e *= scale
		stat += (o - e) * (o - e) / e
	}
	if k < 2 {
		return stat, math.NaN()
	}
	return stat, ChiSquareSF(stat, float64(k-1))
}

// ChiSquareSF returns P(X >= x) for X chi-square distributed with df
// degrees of freedom, scipy.stats.chi2.sf(x, df) = Q(df/2, x/2). It is 1
// for x <= 0 and NaN for df <= 0.
func ChiSquareSF(x, df float64) float64 {
	if !(df > 0) || math.IsNaN(x) {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	return gammaQ(df/2, x/2)
}

// gammaQ is the regularised upper incomplete gamma function
// Q(a, x) = Γ(a, x)/Γ(a) (scipy.special.gammaincc), for a > 0, x >= 0:
// 1 - P(a, x) by the power series for x < a+1, otherwise the continued
// fraction by the modified Lentz method (Numerical Recipes §6.2), each run
// until a term changes the result by less than 2^-53; the common factor
// e^{-x} x^a / Γ(a) is taken in logs so that tails beyond the float range
// come out as 0 rather than NaN. It agrees with SciPy's gammaincc (cephes
// igamc) to about 1e-12 relative, a up to 2000.
func gammaQ(a, x float64) float64 {
	switch {
	case !(a > 0) || !(x >= 0):
		return math.NaN()
	case x == 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	lga, _ := math.Lgamma(a)
	logPre := -x + a*math.Log(x) - lga
	const eps = 0x1p-53
	const maxIter = 1000000
	if x < a+1 {
		// P(a,x) = e^{-x} x^a / Γ(a+1) · Σ_n x^n / ((a+1)…(a+n))
		ap, del := a, 1/a
		sum := del
		for range maxIter {
			ap++
			del *= x / ap
			sum += del
			if math.Abs(del) < math.Abs(sum)*eps {
				break
			}
		}
		return clipProb(1 - sum*math.Exp(logPre))
	}
	// Q(a,x) = e^{-x} x^a / Γ(a) · 1/(x+1-a- 1·(1-a)/(x+3-a- 2·(2-a)/(x+5-a- …)))
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i <= maxIter; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return clipProb(math.Exp(logPre + math.Log(h)))
}
