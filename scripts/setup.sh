#!/usr/bin/env bash
# scripts/setup.sh — from a fresh Debian 12 machine to a running example:
# installs the missing Debian packages, configures a Release build in build/, builds the library
# and the main example, and runs it (examples/fit_tiny.cpp).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh

rewind_install_deps
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)" --target fit_tiny rewind_blas_info
rewind_fix_openblas_core build
echo
./build/examples/fit_tiny
