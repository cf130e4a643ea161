#!/usr/bin/python3
"""Reference values for the accuracy metrics of internal/accuracy and the
monitor's rolling accuracy, computed with scikit-learn. Run with Debian's
/usr/bin/python3 (python3-sklearn, python3-numpy):

    /usr/bin/python3 testdata/accuracy/gen.py

It writes cases.json next to this script; internal/accuracy/sklearn_test.go
reads it. ECE is the bin-weighted gap of sklearn.calibration.calibration_curve
(n_bins=10, strategy='uniform'), the bin counts taken with the same
np.searchsorted call calibration_curve makes.
"""
import json
import os

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, precision_score, recall_score, roc_auc_score

rng = np.random.default_rng(4)
THRESHOLD = 0.5


def ece(y, p):
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    bins = np.linspace(0.0, 1.0, 11)
    counts = np.bincount(np.searchsorted(bins[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    return float(np.sum(counts * np.abs(prob_true - prob_pred)) / len(p))


def case(name, y, p):
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    pred = (p >= THRESHOLD).astype(int)
    return {
        "name": name,
        "labels": y.tolist(),
        "scores": p.tolist(),
        "threshold": THRESHOLD,
        "log_loss": float(log_loss(y, p, eps=1e-15)),
        "brier": float(brier_score_loss(y, p)),
        "roc_auc": float(roc_auc_score(y, p)),
        "ece": ece(y, p),
        "precision": float(precision_score(y, pred)),
        "recall": float(recall_score(y, pred)),
    }


def calibrated(n):
    p = rng.random(n)
    return (rng.random(n) < p).astype(int), p


def overconfident(n):
    p = rng.random(n)
    y = (rng.random(n) < 0.25 + 0.5 * p).astype(int)
    return y, p


y1, p1 = calibrated(1000)
y2, p2 = overconfident(3000)
y3, p3 = calibrated(500)
p3 = np.round(p3, 1)  # every score on a bin edge or 0/1, many ties
y4 = (rng.random(2000) < 0.1).astype(int)  # rare positives, low scores
p4 = np.clip(rng.beta(1, 8, 2000) + 0.3 * y4, 0, 1)

out = {
    "numpy": np.__version__,
    "sklearn": sklearn.__version__,
    "cases": [
        case("calibrated", y1, p1),
        case("overconfident", y2, p2),
        case("scores on bin edges", y3, p3),
        case("rare positives", y4, p4),
    ],
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases.json"), "w") as f:
    json.dump(out, f, separators=(",", ":"))
    f.write("\n")
