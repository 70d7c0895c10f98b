// rewind/core/blas.hpp — which BLAS kernels the matrix products run on, and a warning when they are
// slower than the CPU allows: generic ones, or AVX2 ones on a CPU with AVX-512.
//
// rewind's matrix products are OpenBLAS's sgemm/dgemm. OpenBLAS picks its kernels for the CPU when
// the program starts, and an OpenBLAS older than the CPU may not know it: Debian 12's 0.3.21 reads a
// Sapphire Rapids Xeon as "Prescott" and runs its generic kernels there, 5× slower than its AVX-512
// ones, without a word. So the first matrix product checks: when OpenBLAS runs generic kernels on a
// CPU with AVX2 or AVX-512, rewind warns once on stderr with the fix, an environment variable set
// before the program starts (OpenBLAS reads it only then):
//
//     OPENBLAS_CORETYPE=Cooperlake   AVX-512 with BF16 (Cooper Lake, Sapphire Rapids, Zen 4: the
//                                    fastest on a Sapphire Rapids Xeon, measured)
//     OPENBLAS_CORETYPE=SkylakeX     AVX-512 without BF16
//     OPENBLAS_CORETYPE=Zen          AMD with AVX2;   OPENBLAS_CORETYPE=Haswell   Intel with AVX2
//
// It also warns when OpenBLAS runs its AVX2 kernels (Haswell, Zen) on a CPU with AVX-512 — most often
// because OPENBLAS_CORETYPE was set to them: on a Zen 5 core sgemm then runs at 122 GFLOP/s instead of
// 232 with Cooperlake (measured with ../shared/bench/sgemm_peak.c); on a CPU that splits 512-bit
// instructions in two (Zen 4) the two are about level, so the advice costs nothing there.
//
// REWIND_QUIET_BLAS=1 silences the warning. The project's scripts (setup, examples, the benchmarks)
// set the variable themselves in that case, and bench/rewind_bench restarts itself with it.
#pragma once

#include <string>

namespace rwd {

/// What the matrix products run on.
struct BlasInfo {
  std::string library;   ///< "OpenBLAS" (the BLAS rewind is built with)
  std::string core;      ///< OpenBLAS's kernel set ("Haswell", "Cooperlake", "Prescott", …), "" if unknown
  std::string config;    ///< OpenBLAS's build configuration line
  int threads = 1;       ///< threads a product uses now
  std::string cpu;       ///< the widest vectors this CPU has: "avx512-bf16", "avx512", "avx2" or "baseline"
  bool generic = false;  ///< the kernels are generic (no AVX2) although the CPU has AVX2 or AVX-512
  bool narrow = false;   ///< the kernels are AVX2 ones although the CPU has AVX-512
  std::string suggested_coretype;  ///< OPENBLAS_CORETYPE to set when `generic` or `narrow`, else ""
  bool packed = false;   ///< a weight reused step after step is packed once and multiplied by rewind's
                         ///< own AVX-512 kernel, not OpenBLAS (see set_packed_weights)
  /// One line: "OpenBLAS core=Cooperlake threads=2 cpu=avx512-bf16" (and the advice when generic or
  /// narrow: "… narrow=1 fix=OPENBLAS_CORETYPE=Cooperlake").
  std::string str() const;
};

/// The BLAS's kernels, threads and the CPU's vector width, read now.
BlasInfo blas_info();

/// Packed weights. A recurrent layer multiplies the same weight by a new operand at every step (W_hh·hₜ
/// forward, W_hhᵀ·dGₜ backward), and OpenBLAS copies the whole weight into its kernel's layout at
/// every call. On a CPU with AVX-512F rewind instead packs such a weight once — for a sequence's
/// forward (run_sequence, so every Recurrent, Recur over a sequence and bidirectional layer) and for a
/// backward sweep — and runs those products on its own kernel: float32 only, a parameter or other leaf
/// as the left operand of at least 4,096 elements, from its second use, products at least 16 columns
/// wide (kernels/packed.hpp).
/// The results match OpenBLAS's within float32 rounding, and are the same bits at every thread count.
/// On by default (off when REWIND_NO_PACKED is set in the environment); off, every product is
/// OpenBLAS's. bench/PROFILE.md has the measurements.
void set_packed_weights(bool on);
/// Whether packed weights are on (they run only where the CPU has AVX-512F: BlasInfo::packed).
bool packed_weights();

}  // namespace rwd
