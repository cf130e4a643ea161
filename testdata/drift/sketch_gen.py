#!/usr/bin/python3
"""Reference values for the online drift statistics of package monitors
(monitors/column.go), which compare a current window with a reference
profile's DDSketch instead of the raw reference sample. Run with Debian's
/usr/bin/python3 (python3-scipy, python3-numpy):

    /usr/bin/python3 testdata/drift/sketch_gen.py

It writes sketch_cases.json next to this script; monitors/column_test.go
reads it, builds the reference profile from `reference` exactly as a trainer
does (internal/profile), feeds `current` through a drift window and compares
its KS statistic and p-value and its normalised Wasserstein distance with
SciPy's on the raw samples. Samples are rounded to 3 decimals before SciPy
sees them.
"""
import json
import os

import numpy as np
import scipy
from scipy import stats

rng = np.random.default_rng(20261123)


def case(name, ref, cur):
    ref = np.round(ref, 3)
    cur = np.round(cur, 3)
    ks = stats.ks_2samp(ref, cur)
    w = stats.wasserstein_distance(ref, cur)
    return {
        "name": name,
        "reference": ref.tolist(),
        "current": cur.tolist(),
        "ks_statistic": float(ks.statistic),
        "ks_pvalue": float(ks.pvalue),
        "wasserstein_normed": float(w / max(np.std(ref), 0.001)),
    }


cases = [
    case("exponential, same", rng.exponential(40, 20000), rng.exponential(40, 2000)),
    case("exponential, x1.2", rng.exponential(40, 20000), rng.exponential(48, 2000)),
    case("exponential, x1.8 (the demo's price shift)", rng.exponential(40, 20000), rng.exponential(72, 2000)),
    case("lognormal, same", rng.lognormal(3, 1, 20000), rng.lognormal(3, 1, 2000)),
    case("lognormal, mean +0.1", rng.lognormal(3, 1, 20000), rng.lognormal(3.1, 1, 2000)),
    case("normal around 100, shift +3", rng.normal(100, 15, 20000), rng.normal(103, 15, 2000)),
    case("zeros, negatives and positives", np.concatenate([np.zeros(4000), rng.normal(0, 5, 16000)]),
         np.concatenate([np.zeros(200), rng.normal(1, 5, 1800)])),
    case("small reference (KS by default)", rng.exponential(40, 800), rng.exponential(44, 2000)),
    case("current beyond the reference's range", rng.uniform(10, 20, 20000), rng.uniform(15, 30, 2000)),
]

out = {"numpy": np.__version__, "scipy": scipy.__version__, "cases": cases}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sketch_cases.json"), "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
