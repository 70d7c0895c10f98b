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

/// How OpenBLAS core `core` fits this CPU.
enum class CoreFit {
  fits,     ///< the widest kernels the CPU can run, or nothing to judge (an unknown core, an old CPU)
  generic,  ///< no AVX2 kernels although the CPU has AVX2
  narrow,   ///< AVX2 kernels although the CPU has AVX-512
};
CoreFit core_fit(const std::string& core, const CpuVectors& cpu);

/// The OPENBLAS_CORETYPE that fits this CPU when `core` does not (generic or narrow), else "".
std::string suggested_coretype(const std::string& core, const CpuVectors& cpu);

/// The warning for this process's BLAS — the kernels it runs, the CPU's, the OPENBLAS_CORETYPE that
/// fits, one line ending in a newline — or "" when they fit or REWIND_QUIET_BLAS is set.
std::string blas_warning();
/// Warns once per process on stderr (blas_warning(), when not empty). Called by the first matrix product.
void warn_if_generic_blas();
/// Whether warn_if_generic_blas has run in this process (tests: a product ran before theirs).
bool blas_warning_checked();

}  // namespace rwd::detail
