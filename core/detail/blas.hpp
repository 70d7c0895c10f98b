// rewind/core/detail/blas.hpp — the BLAS check's parts (library-internal; tests/core uses them).
#pragma once

#include <string>

namespace rwd::detail {

/// What a CPU offers, as the check sees it.
struct CpuVectors {
  bool avx2 = false, avx512f = false, avx512bf16 = false, amd = false;
};

/// This CPU's (cpuid).
CpuVectors cpu_vectors();

/// Whether OpenBLAS core `core` is generic for this CPU (no AVX2 kernels although the CPU has AVX2),
/// and if so the OPENBLAS_CORETYPE that fits it ("" when nothing needs fixing or the core is unknown).
std::string suggested_coretype(const std::string& core, const CpuVectors& cpu);

/// Warns once per process on stderr when blas_info().generic (unless REWIND_QUIET_BLAS is set).
/// Called by the first matrix product.
void warn_if_generic_blas();

}  // namespace rwd::detail
