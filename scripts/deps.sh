# shellcheck shell=bash
# scripts/deps.sh — the Debian 12 packages rewind builds with, installed only when missing.
# Sourced by scripts/setup.sh and scripts/test.sh; defines rewind_install_deps.
#
#   cmake, make, g++            the build (CMake ≥ 3.25, GCC ≥ 12 for C++20)
#   libxtensor-dev              the n-d arrays behind every tensor (header-only)
#   libxsimd-dev                xtensor's SIMD kernels (rewind builds with XTENSOR_USE_XSIMD)
#   libxtensor-blas-dev         xtensor's BLAS bindings (cxxblas), through which matmul calls gemm
#   libopenblas-dev             the BLAS itself: sgemm / dgemm
#   libzip-dev                  zip archives for .npz files (core/npz.cpp: save_npz/load_npz, checkpoints)
#   doctest-dev                 the test framework (tests only)

REWIND_DEPS=(cmake make g++ libxtensor-dev libxsimd-dev libxtensor-blas-dev libopenblas-dev libzip-dev doctest-dev)

rewind_install_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); install the equivalents of: ${REWIND_DEPS[*]}" >&2
    return 0
  fi
  local missing=() pkg
  for pkg in "${REWIND_DEPS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    echo "deps: all present (${REWIND_DEPS[*]})"
    return 0
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}
