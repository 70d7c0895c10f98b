#!/usr/bin/env bash
# scripts/test.sh — builds and runs every test through CTest, twice:
#   1. a Release build in build/            (ctest: every doctest case, plus install_and_find_package)
#   2. a sanitized build in build-asan/     (AddressSanitizer + UndefinedBehaviorSanitizer, leak checks on)
# Usage: bash scripts/test.sh [--no-sanitize]     (--no-sanitize skips pass 2)
# Installs the missing Debian packages first (see scripts/deps.sh). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

sanitize=1
for arg in "$@"; do
  case "$arg" in
    --no-sanitize) sanitize=0 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

jobs=$(nproc)
# OpenBLAS starts one thread per core by default; the tests are small and ctest already runs
# $jobs of them at once, so one BLAS thread each keeps the machine from being oversubscribed.
export OPENBLAS_NUM_THREADS=1

# Prints how long the step since the last call took (the whole run must stay well under 15 minutes).
t0=$SECONDS
lap() { echo "-- $1: $((SECONDS - t0)) s"; t0=$SECONDS; }

rewind_install_deps
rewind_install_mpi            # Open MPI: CI always builds and runs the MPI tests (mpirun -np 2 and 3)
rewind_install_example_deps   # the examples' data and gnuplot: ctest runs every example with --quick
rewind_install_browser_deps   # headless Chromium + Selenium: ctest runs the tape page in a browser
rewind_install_packages doxygen  # ctest checks that every public name has a doc comment (scripts/api_docs.sh)

echo "== Release build (build/) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DREWIND_BUILD_TESTS=ON -DREWIND_BUILD_EXAMPLES=ON
cmake --build build -j "$jobs"
lap "Release build"
(cd build && ctest --output-on-failure -j "$jobs")
lap "Release tests"

if ((sanitize)); then
  echo "== AddressSanitizer + UndefinedBehaviorSanitizer build (build-asan/) =="
  # -O1 -g1: line tables for the sanitizers' stack traces at about half the compile time of -O2 -g
  # (xtensor's templates make full debug info expensive); without NDEBUG, so assert()s run too.
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
    -DREWIND_SANITIZE=ON -DREWIND_BUILD_TESTS=ON -DREWIND_BUILD_EXAMPLES=ON
  cmake --build build-asan -j "$jobs"
  lap "sanitized build"
  export ASAN_OPTIONS=halt_on_error=1:abort_on_error=0:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  (cd build-asan && ctest --output-on-failure -j "$jobs")
  lap "sanitized tests"
fi
echo "test.sh: all passed in $SECONDS s"
