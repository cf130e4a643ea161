#!/usr/bin/python3
"""Deterministic training data for the logreg parity test and the speed
comparison with scikit-learn (run with Debian's /usr/bin/python3, which has
python3-numpy and python3-sklearn).

Subcommands:

  gen.py testdata
      Writes, next to this script,
        purchase_20k.jsonl      20,000 labelled vectors, one JSON object a
                                line: {"values":[30 floats],"label":0|1},
                                in time order; every float is rounded to 6
                                significant digits. The first 80% of the
                                lines (16,000) are the training set, the
                                last 20% (4,000) the holdout.
        sklearn_reference.json  scikit-learn's fit on the training lines and
                                its holdout metrics, computed from the file
                                as written (read back, so from the rounded
                                values the Go test also reads).

  gen.py binary --rows N FILE
      Writes N rows from the same generator (unrounded) to FILE in the
      binary format below, for compare.sh.

  gen.py fit FILE
      Times the scikit-learn pipeline's fit on a binary FILE and prints one
      JSON object: {"rows", "features", "seconds", "auc", "n_iter"}. The AUC
      is in-sample (on the rows fitted), as BenchmarkTrain1Mx30 reports.

Binary format (all little-endian):

  offset 0   8 bytes   magic "DLTRAIN1"
  offset 8   uint64    rows n
  offset 16  uint64    features d
  offset 24  float64   X, n*d values, row-major (row i is values
                       [24+8*i*d, 24+8*(i+1)*d))
  then       float64   y, n labels, each 0.0 or 1.0

The generator: rows are in time order (t from 0 to 1). Thirty features are
driven by 6 shared latent factors (so features are correlated, some
strongly) plus their own noise, then put on very different scales and
offsets; three are log-normal "amount" columns and three are integer
"count" columns. Features 26-29 are irrelevant: 26 and 27 are pure noise,
28 and 29 are correlated with relevant features but carry no signal of
their own. A few columns drift slowly over time. The label is drawn from a
logistic ground truth on the (pre-scaling) signals plus Gaussian logit
noise, with the intercept solved for a 30% positive rate.
"""

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

D = 30
SEED = 20240905
MAGIC = b"DLTRAIN1"

HERE = os.path.dirname(os.path.abspath(__file__))
JSONL = os.path.join(HERE, "purchase_20k.jsonl")
REFERENCE = os.path.join(HERE, "sklearn_reference.json")
N_TESTDATA = 20000
TRAIN_FRACTION = 0.8
C = 1.0
MAX_ITER = 1000


def generate(n, seed=SEED):
    """Returns X (n x D float64) and y (n float64 of 0/1), time-ordered."""
    # Model parameters come from their own stream so they do not depend on n.
    prm = np.random.default_rng([seed, 0])
    k = 6
    loadings = prm.normal(0.0, 1.0, size=(D, k)) * (prm.random((D, k)) < 0.4)
    loadings[28] = 0.9 * loadings[3] + 0.3 * prm.normal(0.0, 1.0, size=k)
    loadings[29] = 0.8 * loadings[10] + 0.3 * prm.normal(0.0, 1.0, size=k)
    loadings[26] = 0.0
    loadings[27] = 0.0
    own = prm.uniform(0.3, 1.0, size=D)
    beta = prm.normal(0.0, 0.6, size=D)
    beta[prm.random(D) < 0.2] = 0.0  # some relevant-looking ones are not
    beta[26:] = 0.0
    scale = 10.0 ** prm.uniform(-2.0, 3.0, size=D)
    offset = prm.normal(0.0, 3.0, size=D) * scale
    drift = np.zeros(D)
    drift[[1, 7, 15]] = prm.normal(0.0, 0.3, size=3)

    rng = np.random.default_rng([seed, 1])
    t = np.linspace(0.0, 1.0, n)[:, None]
    f = rng.normal(0.0, 1.0, size=(n, k))
    s = f @ loadings.T + own * rng.normal(0.0, 1.0, size=(n, D)) + drift * t
    s /= np.sqrt((loadings**2).sum(axis=1) + own**2)  # signals ~ unit variance

    logit = s @ beta + rng.normal(0.0, 0.5, size=n)
    u = rng.random(n)
    lo, hi = -20.0, 20.0
    for _ in range(100):  # intercept for a 30% expected positive rate
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(logit + mid)))) < 0.3:
            lo = mid
        else:
            hi = mid
    y = (u < 1 / (1 + np.exp(-(logit + lo)))).astype(np.float64)

    X = offset + scale * s
    X[:, 0:3] = np.exp(0.5 * s[:, 0:3] + 3.0)  # amounts
    X[:, 3:6] = np.round(np.exp(0.4 * s[:, 3:6] + 1.5))  # counts
    return X, y


def pipeline(**kw):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, solver="lbfgs", max_iter=MAX_ITER, **kw)
    )


def pipeline_converged():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=MAX_ITER)
    )


CONVERGED_TEXT = (
    "make_pipeline(StandardScaler(), "
    "LogisticRegression(C=1.0, solver='newton-cholesky', tol=1e-12, max_iter=1000))"
)

PIPELINE_TEXT = (
    "make_pipeline(StandardScaler(), "
    "LogisticRegression(C=1.0, solver='lbfgs', max_iter=1000))"
)


def g6(v):
    s = "%.6g" % v
    return "0" if s == "-0" else s


def read_jsonl(path):
    X, y = [], []
    with open(path) as fh:
        for line in fh:
            o = json.loads(line)
            X.append(o["values"])
            y.append(o["label"])
    return np.array(X, dtype=np.float64), np.array(y, dtype=np.float64)


def cmd_testdata(_):
    from sklearn import __version__ as skver
    from sklearn.metrics import log_loss, roc_auc_score

    X, y = generate(N_TESTDATA)
    with open(JSONL, "w") as fh:
        for row, label in zip(X, y):
            fh.write('{"values":[%s],"label":%d}\n' % (",".join(g6(v) for v in row), label))

    X, y = read_jsonl(JSONL)  # the rounded values, as the Go test sees them
    ntr = int(len(y) * TRAIN_FRACTION)
    pipe = pipeline().fit(X[:ntr], y[:ntr])
    scaler, lr = pipe[0], pipe[1]
    p = pipe.predict_proba(X[ntr:])[:, 1]
    # lbfgs stops on ftol (relative decrease under 64 ulps) or tol=1e-4 on
    # the projected gradient well before the optimum: its coefficients are
    # ~1e-4 from it, and tol=1e-12 does not change that (ftol still stops it
    # at the same iterate). The same pipeline with scikit-learn's
    # newton-cholesky solver at tol=1e-12 reaches the optimum itself (it
    # agrees with newton-cg to ~1e-12); it is recorded as "converged".
    conv = pipeline_converged().fit(X[:ntr], y[:ntr])
    pc = conv.predict_proba(X[ntr:])[:, 1]
    clr = conv[1]
    with open(JSONL, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    ref = {
        "sklearn_version": skver,
        "numpy_version": np.__version__,
        "pipeline": PIPELINE_TEXT,
        "data": os.path.basename(JSONL),
        "data_sha256": digest,
        "rows": int(len(y)),
        "features": int(X.shape[1]),
        "train_rows": ntr,
        "holdout_rows": int(len(y) - ntr),
        "train_positive_rate": float(y[:ntr].mean()),
        "holdout_positive_rate": float(y[ntr:].mean()),
        "holdout_roc_auc": float(roc_auc_score(y[ntr:], p)),
        "holdout_log_loss": float(log_loss(y[ntr:], p)),
        "n_iter": int(lr.n_iter_[0]),
        "intercept": float(lr.intercept_[0]),
        "coef": [float(v) for v in lr.coef_[0]],
        "scaler_mean": [float(v) for v in scaler.mean_],
        "scaler_scale": [float(v) for v in scaler.scale_],
        "converged": {
            "pipeline": CONVERGED_TEXT,
            "n_iter": int(clr.n_iter_[0]),
            "holdout_roc_auc": float(roc_auc_score(y[ntr:], pc)),
            "holdout_log_loss": float(log_loss(y[ntr:], pc)),
            "intercept": float(clr.intercept_[0]),
            "coef": [float(v) for v in clr.coef_[0]],
        },
        "max_abs_coef_diff_lbfgs_vs_converged": float(
            np.max(np.abs(np.append(lr.coef_[0] - clr.coef_[0], lr.intercept_ - clr.intercept_)))
        ),
    }
    with open(REFERENCE, "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")
    print(
        "wrote %s (%d bytes), %s: positive rate %.3f, holdout AUC %.5f, log loss %.5f"
        % (JSONL, os.path.getsize(JSONL), REFERENCE, y.mean(), ref["holdout_roc_auc"], ref["holdout_log_loss"])
    )


def cmd_binary(a):
    X, y = generate(a.rows)
    n, d = X.shape
    with open(a.file, "wb") as fh:
        fh.write(MAGIC)
        fh.write(np.array([n, d], dtype="<u8").tobytes())
        fh.write(np.ascontiguousarray(X, dtype="<f8").tobytes())
        fh.write(np.ascontiguousarray(y, dtype="<f8").tobytes())


def read_binary(path):
    with open(path, "rb") as fh:
        if fh.read(8) != MAGIC:
            sys.exit("%s: not a DLTRAIN1 file" % path)
        n, d = (int(v) for v in np.frombuffer(fh.read(16), dtype="<u8"))
        X = np.fromfile(fh, dtype="<f8", count=n * d).reshape(n, d)
        y = np.fromfile(fh, dtype="<f8", count=n)
    if len(y) != n:
        sys.exit("%s: truncated" % path)
    return X, y


def cmd_fit(a):
    from sklearn.metrics import roc_auc_score

    X, y = read_binary(a.file)
    pipe = pipeline()
    start = time.perf_counter()
    pipe.fit(X, y)
    seconds = time.perf_counter() - start
    auc = roc_auc_score(y, pipe.predict_proba(X)[:, 1])
    print(json.dumps({
        "rows": X.shape[0], "features": X.shape[1], "seconds": seconds,
        "auc": float(auc), "n_iter": int(pipe[1].n_iter_[0]),
    }))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("testdata").set_defaults(func=cmd_testdata)
    b = sub.add_parser("binary")
    b.add_argument("--rows", type=int, default=1_000_000)
    b.add_argument("file")
    b.set_defaults(func=cmd_binary)
    f = sub.add_parser("fit")
    f.add_argument("file")
    f.set_defaults(func=cmd_fit)
    a = ap.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
