#!/usr/bin/env bash
# scripts/example.sh NAME [flags] — installs what example NAME needs (its Debian data packages and
# gnuplot), builds it, and runs it from the repository root; its CSV and PNG files go to out/NAME/.
#   bash scripts/example.sh forecast           # the full run
#   bash scripts/example.sh forecast --quick   # a few batches: a check that it works
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

name=${1:-}
if [[ -z $name || -z ${REWIND_EXAMPLE_DEPS[$name]+x} ]]; then
  echo "usage: bash scripts/example.sh NAME [--quick] [--out DIR] [--seed N]" >&2
  echo "examples: ${!REWIND_EXAMPLE_DEPS[*]}" >&2
  exit 2
fi
shift

rewind_install_deps
# shellcheck disable=SC2086
rewind_install_packages ${REWIND_EXAMPLE_DEPS[$name]}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target "$name" rewind_blas_info
rewind_fix_openblas_core build
exec ./build/examples/"$name" "$@"
