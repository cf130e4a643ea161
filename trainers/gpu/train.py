#!/usr/bin/env python3
"""Driftline's GPU trainer: L2 logistic regression with standardisation on
PyTorch, behind the trainer contract (docs/trainers.md).

    python3 trainers/gpu/train.py --data DATA --out MODEL.json [--l2 1]
                                  [--device auto|cuda|cpu] [--max-iter 100]
                                  [--tol 1e-10]

DATA is JSON lines, one {"values": [...], "label": 0|1} object a line (the
worker writes this; whole driftline.labels records also work), or the
DLTRAIN1 binary of testdata/train/gen.py ("DLTRAIN1", uint64 rows, uint64
features, row-major float64 X, float64 y, little-endian), detected by its
magic.

MODEL.json is a schemas.ModelVersion object with backend, weights, bias,
mean, std, l2 and hyperparameters set:

    score(x) = sigmoid(bias + sum_j weights[j] * (x[j] - mean[j]) / std[j])

The model and objective are internal/logreg's exactly: population std (1 for
a constant column); minimise sum_i logloss_i + (l2/2)||w||^2 (intercept not
penalised), i.e. scikit-learn's LogisticRegression(C=1/l2) on
StandardScaler output. Solved by damped Newton in float64 on the device,
stopping when max|gradient|/rows < tol.

Exit codes: 0 model written; 1 failure (the worker retries); 2 usage;
3 unavailable here (no torch, or --device auto/cuda without a CUDA device:
the worker trains on its CPU instead); 4 the data cannot be trained on (one
class, ragged rows, non-finite values).
"""

import argparse
import json
import math
import struct
import sys
import time

EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_BAD_DATA = 1, 2, 3, 4


class BadData(Exception):
    pass


def load(path, torch):
    with open(path, "rb") as f:
        head = f.read(8)
        if head == b"DLTRAIN1":
            n, d = struct.unpack("<QQ", f.read(16))
            buf = bytearray(f.read())
            if len(buf) != 8 * (n * d + n):
                raise BadData(f"DLTRAIN1 file holds {len(buf)} bytes after its header, want {8 * (n * d + n)}")
            t = torch.frombuffer(buf, dtype=torch.float64)
            return t[: n * d].reshape(n, d), t[n * d:]
        f.seek(0)
        xs, ys = [], []
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
                vals, lab = obj["values"], obj.get("label", 0)
            except (ValueError, KeyError, TypeError) as e:
                raise BadData(f"line {lineno}: {e}")
            if lab not in (0, 1):
                raise BadData(f"line {lineno}: label {lab!r} is not 0 or 1")
            if xs and len(vals) != len(xs[0]):
                raise BadData(f"line {lineno}: {len(vals)} values, the first row has {len(xs[0])}")
            xs.append(vals)
            ys.append(float(lab))
    if not xs:
        raise BadData("no rows")
    return torch.tensor(xs, dtype=torch.float64), torch.tensor(ys, dtype=torch.float64)


def fit(X, y, l2, max_iter, tol, torch):
    n, d = X.shape
    if not bool(torch.isfinite(X).all()) or not bool(torch.isfinite(y).all()):
        raise BadData("non-finite value in the data")
    pos = float(y.sum())
    if pos == 0 or pos == n:
        raise BadData(f"{int(pos)} of {n} labels positive: a single class")
    mean = X.mean(dim=0)
    std = X.std(dim=0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    Z = torch.cat([torch.ones(n, 1, dtype=X.dtype, device=X.device), (X - mean) / std], dim=1)
    theta = torch.zeros(d + 1, dtype=X.dtype, device=X.device)
    pen = torch.full((d + 1,), l2, dtype=X.dtype, device=X.device)
    pen[0] = 0

    def objective(th):
        t = Z @ th
        # sum log(1 + e^t) - y t, stably
        return float((torch.nn.functional.softplus(t) - y * t).sum() + 0.5 * (pen * th * th).sum())

    J = objective(theta)
    it = 0
    for it in range(1, max_iter + 1):
        p = torch.sigmoid(Z @ theta)
        g = Z.T @ (p - y) + pen * theta
        if float(g.abs().max()) / n < tol:
            it -= 1
            break
        w = p * (1 - p)
        H = (Z * w[:, None]).T @ Z + torch.diag(pen)
        step = torch.linalg.solve(H, g)
        # Armijo backtracking on the objective.
        a, slope = 1.0, float(g @ step)
        while True:
            cand = theta - a * step
            Jc = objective(cand)
            if Jc <= J - 1e-4 * a * slope or a < 1e-10:
                break
            a *= 0.5
        theta, J = cand, Jc
    return theta[1:], float(theta[0]), mean, std, it


def in_sample_auc(X, y, w, b, mean, std, torch):
    """ROC AUC of the fitted model on the rows it was fitted on (Mann-Whitney
    on ranks; ties in score broken by order, which continuous scores make
    negligible). Reported on stderr, not timed."""
    s = ((X - mean) / std) @ w + b
    ranks = torch.empty_like(s)
    ranks[torch.argsort(s)] = torch.arange(1, s.numel() + 1, dtype=s.dtype, device=s.device)
    pos = float(y.sum())
    neg = y.numel() - pos
    return (float((ranks * y).sum()) - pos * (pos + 1) / 2) / (pos * neg)


def main():
    ap = argparse.ArgumentParser(description="Driftline GPU trainer (trainer contract)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--l2", type=float, default=1.0)
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-10)
    try:
        args = ap.parse_args()
    except SystemExit as e:
        return EXIT_USAGE if e.code else 0
    if args.l2 < 0 or not math.isfinite(args.l2):
        print(f"--l2 must be >= 0, got {args.l2}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import torch
    except ImportError as e:
        print(f"torch unavailable: {e}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.device in ("auto", "cuda") and not torch.cuda.is_available():
        print("no CUDA device", file=sys.stderr)
        return EXIT_UNAVAILABLE
    device = torch.device("cuda" if args.device != "cpu" else "cpu")
    l2 = args.l2 or 1.0
    try:
        t0 = time.perf_counter()
        X, y = load(args.data, torch)
        t1 = time.perf_counter()
        X, y = X.to(device), y.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        w, b, mean, std, iters = fit(X, y, l2, args.max_iter, args.tol, torch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t3 = time.perf_counter()
    except BadData as e:
        print(f"cannot train: {e}", file=sys.stderr)
        return EXIT_BAD_DATA
    except Exception as e:  # noqa: BLE001 - any other failure is retried by the worker
        print(f"cannot train: {e}", file=sys.stderr)
        return EXIT_FAILED
    with torch.no_grad():
        auc = in_sample_auc(X, y, w, b, mean, std, torch)
    backend = ("gpu" if device.type == "cuda" else "cpu") + "-torch-logreg"
    model = {
        "backend": backend,
        "weights": w.cpu().tolist(),
        "bias": b,
        "mean": mean.cpu().tolist(),
        "std": std.cpu().tolist(),
        "l2": l2,
        "hyperparameters": {
            "l2": l2, "iterations": iters, "max_iter": args.max_iter, "tol": args.tol,
            "rows": int(X.shape[0]), "load_seconds": t1 - t0, "transfer_seconds": t2 - t1, "fit_seconds": t3 - t2,
        },
    }
    with open(args.out, "w") as f:
        json.dump(model, f)
    print(json.dumps({"backend": backend, "rows": int(X.shape[0]), "features": int(X.shape[1]), "iterations": iters,
                      "load_seconds": round(t1 - t0, 4), "transfer_seconds": round(t2 - t1, 4),
                      "fit_seconds": round(t3 - t2, 4), "auc": auc}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
