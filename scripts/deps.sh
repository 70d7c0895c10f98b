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
# Optional (rewind_install_mpi): data-parallel training over MPI (comm/, train/distributed.hpp):
#   libopenmpi-dev openmpi-bin  Open MPI's headers and library, and mpirun for the MPI tests

REWIND_DEPS=(cmake make g++ libxtensor-dev libxsimd-dev libxtensor-blas-dev libopenblas-dev libzip-dev doctest-dev)

# The examples' data and plotting, by example (scripts/example.sh installs what one example needs;
# scripts/test.sh installs them all, since CI runs every example with --quick).
declare -A REWIND_EXAMPLE_DEPS=(
  [fit_tiny]=""
  [tour]="gnuplot-nox"
  [forecast]="gnuplot-nox"
  [charrnn]="gnuplot-nox fortunes"
  [words]="gnuplot-nox wamerican wngerman wfrench witalian wspanish"
  [fashion]="gnuplot-nox dataset-fashion-mnist"
  [holt]="gnuplot-nox"
  [seeing]="gnuplot-nox graphviz"
  [custom_cell]="gnuplot-nox"
  [hvp]=""
  [gradient_flow]="gnuplot-nox"
  [adder]="gnuplot-nox"
  [g2p]="gnuplot-nox festlex-cmu"
)

# Installs the given packages when missing (an `apt-get update` only when something is).
rewind_install_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  ((${#missing[@]} == 0)) && return 0
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# Every example's packages (for CI, which runs them all with --quick).
rewind_install_example_deps() {
  local all=() name
  for name in "${!REWIND_EXAMPLE_DEPS[@]}"; do
    # shellcheck disable=SC2206
    all+=(${REWIND_EXAMPLE_DEPS[$name]})
  done
  if command -v dpkg-query >/dev/null 2>&1 && ((${#all[@]})); then rewind_install_packages "${all[@]}"; fi
}

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

# Open MPI, optional for the library (it builds and passes every other test without it); scripts/test.sh
# installs it so that CI always builds and runs the MPI tests (CTest runs them under mpirun).
REWIND_MPI_DEPS=(libopenmpi-dev openmpi-bin)
rewind_install_mpi() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); for MPI install the equivalents of: ${REWIND_MPI_DEPS[*]}" >&2
    return 0
  fi
  rewind_install_packages "${REWIND_MPI_DEPS[@]}"
}

# OpenBLAS picks its kernels when a program starts; on a CPU newer than Debian 12's OpenBLAS (a
# Sapphire Rapids Xeon, say) it falls back to generic kernels, 5x slower, unless OPENBLAS_CORETYPE
# names a kernel set; and an OPENBLAS_CORETYPE left at an AVX2 set (Haswell, Zen) on a CPU with
# AVX-512 halves sgemm on a Zen 5 core. When rewind's check (core/blas.hpp, asked through the built
# rewind_blas_info in BUILD_DIR, default build/) finds either, this exports the set that fits the CPU,
# for every program the script starts afterwards, and says so; REWIND_KEEP_OPENBLAS_CORETYPE=1 keeps
# the variable as it is.
rewind_fix_openblas_core() {
  local build_dir=${1:-build} coretype
  [[ -n ${REWIND_KEEP_OPENBLAS_CORETYPE:-} && ${REWIND_KEEP_OPENBLAS_CORETYPE} != 0 ]] && return 0
  [[ -x $build_dir/rewind_blas_info ]] || return 0
  coretype=$(REWIND_QUIET_BLAS=1 "$build_dir/rewind_blas_info" --coretype) || return 0
  if [[ -n $coretype ]]; then
    if [[ -n ${OPENBLAS_CORETYPE:-} ]]; then
      echo "deps: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE runs slower kernels than this CPU can; exporting" \
        "OPENBLAS_CORETYPE=$coretype (REWIND_KEEP_OPENBLAS_CORETYPE=1 keeps yours)" >&2
    else
      echo "deps: OpenBLAS runs generic kernels on this CPU; exporting OPENBLAS_CORETYPE=$coretype" >&2
    fi
    export OPENBLAS_CORETYPE=$coretype
  fi
}

# A headless browser for the tape page's test (tests/browser/check_page.py, CTest browser_tape_page):
# Chromium, its WebDriver and Python's Selenium. Optional: without them that one test is skipped
# (visibly, as SKIPPED in CTest's summary); scripts/test.sh installs them so that CI runs it.
REWIND_BROWSER_DEPS=(chromium chromium-driver python3-selenium)
rewind_install_browser_deps() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); for the browser test install the equivalents of: ${REWIND_BROWSER_DEPS[*]}" >&2
    return 0
  fi
  rewind_install_packages "${REWIND_BROWSER_DEPS[@]}"
}
