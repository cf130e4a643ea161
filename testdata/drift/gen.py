#!/usr/bin/python3
"""Reference values for the drift statistics of package monitors
(monitors/drift.go), computed with SciPy. Run with Debian's /usr/bin/python3
(python3-scipy, python3-numpy):

    /usr/bin/python3 testdata/drift/gen.py

It writes cases.json next to this script; monitors/drift_test.go reads it.
The output is deterministic for a given NumPy/SciPy (the versions are
recorded in the file).

Every sample is drawn from numpy.random.default_rng(SEED) and rounded (to 4
decimals, 3 for the large samples) before SciPy sees it, so the values in the
file are exactly the values SciPy used and the file stays small. Non-finite
floats are written as the strings "Infinity", "-Infinity" and "NaN" (JSON
has no literal for them).

Sections of cases.json:

  numeric        two samples "reference" and "current" with
                   ks_statistic, ks_pvalue  scipy.stats.ks_2samp(ref, cur)
                                            (alternative='two-sided',
                                            method='auto')
                   ks_method                "exact" when max(n1, n2) <= 10000
                                            (what 'auto' picks), else "asymp"
                   ks_asymp_n               for "asymp": round(n1*n2/(n1+n2)),
                                            the n of the kstwo distribution
                   wasserstein              scipy.stats.wasserstein_distance
                   wasserstein_norm         Evidently's "Wasserstein distance
                                            (normed)": wasserstein /
                                            max(np.std(ref), 0.001)
  jensenshannon  vectors p, q and scipy.spatial.distance.jensenshannon(p, q)
  chisquare      category counts of a reference and a current sample, and
                 Evidently's chi-square test on them: f_exp = reference count
                 * (current total / reference total), f_obs = current count,
                 scipy.stats.chisquare(f_obs, f_exp) -> statistic, pvalue
  kstwo_sf       scipy.stats.kstwo.sf(d, n): the exact distribution of the
                 one-sample two-sided KS statistic D_n, which ks_2samp's
                 asymptotic path evaluates at n = round(n1*n2/(n1+n2))
  smirnov        scipy.special.smirnov(n, d): one-sided Smirnov survival
  chi2_sf        scipy.stats.chi2.sf(x, df)
  gammaincc      scipy.special.gammaincc(a, x): the regularised upper
                 incomplete gamma function Q(a, x)
"""

import json
import math
import os
import platform

import numpy as np
import scipy
import scipy.special
from scipy import stats
from scipy.spatial import distance

SEED = 20260704
HERE = os.path.dirname(os.path.abspath(__file__))
MAX_AUTO_N = 10000  # scipy.stats.ks_2samp: method='auto' is exact up to here


def fl(x):
    """A float for JSON: finite floats as numbers, the rest as strings."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def numeric_case(name, ref, cur):
    ref = [float(v) for v in ref]
    cur = [float(v) for v in cur]
    res = stats.ks_2samp(ref, cur)
    n1, n2 = len(ref), len(cur)
    c = {
        "name": name,
        "reference": ref,
        "current": cur,
        "ks_statistic": fl(res.statistic),
        "ks_pvalue": fl(res.pvalue),
        "ks_method": "exact" if max(n1, n2) <= MAX_AUTO_N else "asymp",
    }
    if c["ks_method"] == "asymp":
        c["ks_asymp_n"] = int(np.round(n1 * n2 / (n1 + n2)))
    w = stats.wasserstein_distance(ref, cur)
    c["wasserstein"] = fl(w)
    c["wasserstein_norm"] = fl(w / max(np.std(ref), 0.001))
    return c


def numeric_cases(rng):
    def r4(a):
        return np.round(a, 4)

    def r3(a):
        return np.round(a, 3)

    out = []
    add = lambda name, ref, cur: out.append(numeric_case(name, ref, cur))

    add("tiny normal vs shifted, n=5 and 7 (exact)",
        r4(rng.normal(0, 1, 5)), r4(rng.normal(1, 1, 7)))
    add("small normal vs shifted, n=20 and 20 (exact, equal n)",
        r4(rng.normal(0, 1, 20)), r4(rng.normal(0.8, 1, 20)))
    add("small lognormal, n=30 and 25 (exact)",
        r4(rng.lognormal(0, 0.5, 30)), r4(rng.lognormal(0.3, 0.6, 25)))
    add("ties-heavy Poisson counts, n=200 and 150 (exact)",
        rng.poisson(3.0, 200).astype(float), rng.poisson(3.5, 150).astype(float))
    x = r4(rng.normal(0, 1, 50))
    add("identical samples, n=50 (D=0)", x, x.copy())
    add("disjoint samples, n=30 and 30 (D=1, tiny p)",
        r4(rng.normal(0, 1, 30)), r4(rng.normal(100, 1, 30)))
    add("disjoint samples, current below, n=10 and 8",
        r4(rng.normal(10, 1, 10)), r4(rng.normal(0, 1, 8)))
    add("one reference value, n=1 and 3", [0.5], [0.1, 0.2, 0.9])
    add("medium normal vs shifted 0.1, n=3000 and 2000 (exact)",
        r4(rng.normal(0, 1, 3000)), r4(rng.normal(0.1, 1, 2000)))
    add("medium normal vs wider, n=1000 and 1000 (exact, equal n)",
        r4(rng.normal(0, 1, 1000)), r4(rng.normal(0, 1.2, 1000)))
    add("binary 0/1 rate 0.30 vs 0.33, n=5000 and 5000 (exact, ties)",
        (rng.random(5000) < 0.30).astype(float), (rng.random(5000) < 0.33).astype(float))
    add("large same distribution, n=20000 and 12000 (asymptotic)",
        r3(rng.normal(0, 1, 20000)), r3(rng.normal(0, 1, 12000)))
    add("large normal vs shifted 0.05, n=15000 and 11000 (asymptotic)",
        r3(rng.normal(0, 1, 15000)), r3(rng.normal(0.05, 1, 11000)))
    add("large reference lognormal, small current, n=12000 and 40 (asymptotic, kstwo n=40)",
        r4(rng.lognormal(0, 1, 12000)), r4(rng.lognormal(0.4, 1, 40)))
    return out


def js_cases(rng):
    out = []

    def add(name, p, q):
        p = [float(v) for v in p]
        q = [float(v) for v in q]
        out.append({"name": name, "p": p, "q": q,
                    "distance": fl(distance.jensenshannon(p, q))})

    add("uniform vs skewed", [0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25])
    add("zero in p", [0.5, 0.0, 0.5], [0.4, 0.4, 0.2])
    add("zeros in both", [0.0, 0.6, 0.4, 0.0], [0.3, 0.0, 0.7, 0.0])
    add("disjoint support", [1.0, 0.0], [0.0, 1.0])
    add("identical", [0.2, 0.3, 0.5], [0.2, 0.3, 0.5])
    add("unnormalised counts", [10, 20, 30], [3, 3, 4])
    add("near identical", [0.25, 0.25, 0.25, 0.25], [0.2501, 0.2499, 0.25, 0.25])
    add("dirichlet, 30 bins", rng.dirichlet(np.ones(30)), rng.dirichlet(np.ones(30)))
    # Binned like a reference profile: decile edges of the reference,
    # fractions of reference and current per bin.
    ref = rng.normal(0, 1, 5000)
    cur = rng.normal(0.3, 1.1, 3000)
    edges = np.quantile(ref, np.linspace(0.1, 0.9, 9))
    fr = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=10) / len(ref)
    fc = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10) / len(cur)
    add("profile deciles, normal vs shifted", fr, fc)
    return out


def chisquare_cases(rng):
    out = []

    def add(name, ref, cur):
        ref = [float(v) for v in ref]
        cur = [float(v) for v in cur]
        # Evidently's _chi_stat_test: k_norm = current rows / reference rows.
        k_norm = sum(cur) / sum(ref)
        f_exp = [r * k_norm for r in ref]
        with np.errstate(divide="ignore", invalid="ignore"):
            res = stats.chisquare(cur, f_exp)
        out.append({"name": name, "reference_counts": ref, "current_counts": cur,
                    "f_exp": [fl(v) for v in f_exp],
                    "statistic": fl(res.statistic), "pvalue": fl(res.pvalue)})

    add("die, 6 categories", [100, 100, 100, 100, 100, 100], [16, 18, 16, 14, 12, 12])
    add("binary", [700, 300], [650, 350])
    add("identical proportions", [20, 40, 60], [10, 20, 30])
    add("category unseen in reference", [50, 50, 0], [10, 10, 5])
    add("small drift, 8 categories",
        rng.multinomial(2000, np.ones(8) / 8), rng.multinomial(1500, np.ones(8) / 8))
    pr = rng.dirichlet(np.ones(50))
    pc = 0.7 * pr + 0.3 * rng.dirichlet(np.ones(50))
    add("50 categories, drift (tiny p)", rng.multinomial(100000, pr), rng.multinomial(20000, pc))
    add("large counts, strong drift (p underflows)",
        [500000, 300000, 200000], [200000, 300000, 500000])
    p = rng.dirichlet(np.full(500, 5.0))
    add("500 categories, no drift", rng.multinomial(200000, p), rng.multinomial(100000, p))
    return out


def kstwo_cases():
    out = []
    ns = [1, 2, 3, 5, 10, 25, 50, 100, 140, 141, 200, 500, 1000, 4000, 10000,
          50000, 100000, 100001, 300000, 2000000]
    zs = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.87, 0.9, 1.0, 1.1,
          1.2, 1.3, 1.48, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0]
    for n in ns:
        ds = {z / math.sqrt(n) for z in zs}
        ds |= {0.4 / n, 0.5 / n, 0.75 / n, 1.0 / n, 1.5 / n, 0.3, 0.49, 0.5,
               0.55, 0.7, 0.95, 1 - 1.0 / n, 1 - 0.5 / n, 1.0}
        for d in sorted(ds):
            if 0 < d <= 1:
                out.append({"n": n, "d": d, "sf": fl(stats.kstwo.sf(d, n))})
    return out


def smirnov_cases():
    out = []
    for n in [1, 2, 5, 10, 50, 100, 141, 1000, 5000, 20000, 2000000]:
        for z in [0.3, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0]:
            d = z / math.sqrt(n)
            if d < 1:
                out.append({"n": n, "d": d, "sf": fl(scipy.special.smirnov(n, d))})
        for d in [0.5, 0.6, 0.9, 1 - 0.5 / n]:
            if 0 < d < 1:
                out.append({"n": n, "d": d, "sf": fl(scipy.special.smirnov(n, d))})
    return out


def chi2_cases():
    out = []
    for df in [1, 2, 3, 4, 5, 7, 10, 29, 49, 100, 499, 1000, 5000]:
        for f in [0.0, 0.01, 0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0, 5.0, 10.0]:
            x = f * df
            out.append({"df": df, "x": x, "sf": fl(stats.chi2.sf(x, df))})
        for x in [0.5, 7.5, 40.0, 200.0, 1000.0]:
            out.append({"df": df, "x": x, "sf": fl(stats.chi2.sf(x, df))})
    return out


def gammaincc_cases():
    out = []
    for a in [0.1, 0.5, 1.0, 1.7, 3.0, 12.3, 50.0, 250.5, 2000.0]:
        for f in [0.001, 0.1, 0.5, 0.9, 1.0, 1.05, 1.3, 2.0, 5.0]:
            x = f * a
            out.append({"a": a, "x": x, "q": fl(scipy.special.gammaincc(a, x))})
    return out


def main():
    rng = np.random.default_rng(SEED)
    doc = {
        "generator": "testdata/drift/gen.py",
        "python_version": platform.python_version(),
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "seed": SEED,
        "numeric": numeric_cases(rng),
        "jensenshannon": js_cases(rng),
        "chisquare": chisquare_cases(rng),
        "kstwo_sf": kstwo_cases(),
        "smirnov": smirnov_cases(),
        "chi2_sf": chi2_cases(),
        "gammaincc": gammaincc_cases(),
    }
    path = os.path.join(HERE, "cases.json")
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    for c in doc["numeric"]:
        print(f'{c["name"]}: D={c["ks_statistic"]} p={c["ks_pvalue"]} '
              f'W={c["wasserstein"]} ({c["ks_method"]})')
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
