#!/usr/bin/env bash
# scripts/soak.sh — the long-run memory tests at nightly size (tests/test_soak.cpp):
#   an LSTM unrolled over 100,000 and 200,000 steps (memory per step equal, all of it freed after the
#   backward; about 3.3 GB at the peak) and 200,000 training steps with flat memory.
# CI runs the same cases at 1/100 of the size. Usage: bash scripts/soak.sh [SCALE]   (default 100)
# Needs a Release build in build/ (bash scripts/test.sh --no-sanitize makes one).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${1:-100}
[[ -x build/rewind_tests ]] || { echo "soak.sh: build/rewind_tests not found; build first (bash scripts/test.sh --no-sanitize)" >&2; exit 2; }
REWIND_SOAK_SCALE=$scale OPENBLAS_NUM_THREADS=1 build/rewind_tests --test-case='soak:*' --success=false -s 2>&1 |
  grep -E 'MESSAGE|ERROR|test cases|assertions|Status' | sed 's/^.*MESSAGE: /  /'
