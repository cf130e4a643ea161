#!/usr/bin/env bash
# Times scikit-learn against our Go trainer on the same 1,000,000 x 30
# dataset, in one run, and prints one JSON line:
#
#   {"rows":..., "features":..., "sklearn_seconds":..., "go_seconds":...,
#    "ratio":..., "sklearn_auc":..., "go_auc":...}
#
# ratio = sklearn_seconds / go_seconds (above 1: Go is faster).
#
# The data come from gen.py's generator (the one behind purchase_20k.jsonl)
# and are written once, to a temporary directory that is removed on exit
# (never into the repository), in gen.py's DLTRAIN1 binary format: "DLTRAIN1",
# uint64 rows, uint64 features, row-major float64 X, float64 labels, all
# little-endian. Both sides read it in bulk; reading is not timed.
#
#   sklearn: make_pipeline(StandardScaler(), LogisticRegression(C=1.0,
#            solver='lbfgs', max_iter=1000)).fit(X, y), timed with
#            time.perf_counter in /usr/bin/python3 (gen.py fit).
#   Go:      logreg.Train(Config{L2: 1}, X, y) (standardisation, input
#            checks and Newton), as BenchmarkTrain1Mx30 with -benchtime 1x;
#            the test binary is compiled before timing.
#
# Both AUCs are in-sample (on the rows fitted). Both sides may use every
# core (numpy's BLAS threads; Train's Workers = NumCPU).
#
# Where $PYTHON imports torch, trainers/gpu/train.py (the GPU backend's
# contract trainer) is timed on the same file too, on TORCH_DEVICE (default
# auto: CUDA, skipped without a device; "cpu" for torch on the CPU), and the
# line gains torch_backend, torch_seconds (its fit_seconds: standardise +
# Newton, after the data are on the device), torch_transfer_seconds,
# torch_auc and torch_ratio = sklearn_seconds / torch_seconds.
#
# Environment: ROWS (default 1000000), PYTHON (default /usr/bin/python3),
# GO (default go), TMPDIR (where the ~250 MB file goes), TORCH_DEVICE.
set -euo pipefail

rows=${ROWS:-1000000}
py=${PYTHON:-/usr/bin/python3}
gocmd=${GO:-go}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/driftline-train.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
data=$tmp/train.bin

"$py" "$here/gen.py" binary --rows "$rows" "$data"
(cd "$repo" && "$gocmd" test -c -o "$tmp/logreg.test" ./internal/logreg)

sk=$("$py" "$here/gen.py" fit "$data")
gobench=$(cd "$repo/internal/logreg" && DRIFTLINE_TRAIN_FILE=$data "$tmp/logreg.test" \
	-test.run '^$' -test.bench '^BenchmarkTrain1Mx30$' -test.benchtime 1x)
line=$(grep '^BenchmarkTrain1Mx30' <<<"$gobench") || {
	echo "compare.sh: no benchmark result in:" >&2
	echo "$gobench" >&2
	exit 1
}

torch="{}"
if "$py" -c 'import torch' 2>/dev/null; then
	if "$py" "$repo/trainers/gpu/train.py" --data "$data" --out "$tmp/model.json" \
		--device "${TORCH_DEVICE:-auto}" 2>"$tmp/torch.err"; then
		torch=$(tail -n 1 "$tmp/torch.err")
	else
		echo "compare.sh: train.py exited $? ($(tail -n 1 "$tmp/torch.err")); no torch column" >&2
	fi
fi

"$py" - "$sk" "$line" "$torch" <<'PY'
import json, sys
sk = json.loads(sys.argv[1])
torch = json.loads(sys.argv[3])
f = sys.argv[2].split()
metrics = {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)}
go_s = metrics["ns/op"] / 1e9
assert int(metrics["rows"]) == sk["rows"] and int(metrics["features"]) == sk["features"]
out = {
    "rows": sk["rows"], "features": sk["features"],
    "sklearn_seconds": round(sk["seconds"], 3), "go_seconds": round(go_s, 3),
    "ratio": round(sk["seconds"] / go_s, 2),
    "sklearn_auc": round(sk["auc"], 6), "go_auc": round(metrics["auc*1e9"] / 1e9, 6),
}
if torch:
    out.update({
        "torch_backend": torch["backend"], "torch_seconds": round(torch["fit_seconds"], 3),
        "torch_transfer_seconds": round(torch["transfer_seconds"], 3), "torch_auc": round(torch["auc"], 6),
        "torch_ratio": round(sk["seconds"] / torch["fit_seconds"], 2),
    })
print(json.dumps(out))
PY
