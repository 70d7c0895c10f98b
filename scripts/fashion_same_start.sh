#!/usr/bin/env bash
# scripts/fashion_same_start.sh — fashion's model in rewind and in PyTorch from the same initial weights
# on the same batches: is each training step the same computation on both sides?
#
#   bash scripts/fashion_same_start.sh
#
# PyTorch draws the weights (seed 0) and trains 300 batches of 64 (the first 19,200 training images in
# file order, Adam 1e-3); rewind loads those weights with load_torch and trains on the same batches.
# Prints the relative difference of the two losses every 25 batches and the mean loss per stretch.
# Environment: REWIND_BUILD (default build), PYTHON (default /usr/bin/python3), OUT (default
# out/peers/fashion_same_start).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${REWIND_BUILD:-build}
python=${PYTHON:-/usr/bin/python3}
out=${OUT:-out/peers/fashion_same_start}
mkdir -p "$out"
# The rewind side is the CMake target fashion_same_start (built with the examples).
cmake --build "$build" -j 2 --target fashion_same_start >/dev/null ||
  { echo "fashion_same_start.sh: cannot build the target fashion_same_start in $build (configure it with -DREWIND_BUILD_EXAMPLES=ON)" >&2; exit 1; }
same_start="$(cd "$build" && pwd)/scripts/fashion_same_start"
export OPENBLAS_NUM_THREADS=1
(cd "$out" && nice -n 19 "$python" "$OLDPWD/scripts/fashion_same_start.py" && nice -n 19 "$same_start")
paste "$out/torch_losses.txt" "$out/rewind_losses.txt" | awk '
  { d = ($4 - $2) / $2; if (d < 0) d = -d
    if ($1 % 25 == 0 || $1 == 299) printf "batch %3d  torch %.6f  rewind %.6f  relative difference %.1e\n", $1, $2, $4, d
    k = $1 < 50 ? 1 : $1 < 150 ? 2 : 3; t[k] += $2; r[k] += $4; n[k]++ }
  END { split("0-49 50-149 150-299", name, " ")
        for (k = 1; k <= 3; k++) printf "batches %-8s mean loss: torch %.5f  rewind %.5f\n", name[k], t[k] / n[k], r[k] / n[k] }'
