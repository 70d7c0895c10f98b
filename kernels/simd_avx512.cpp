// The AVX-512 compilation of simd_arch.hpp's tanh, sigmoid and exp (this file alone is built with
// -mavx512f -mfma; simd.cpp calls it only on a CPU that has both). Their polynomial formulas run twice
// as many lanes an instruction as AVX2's: 1.8× on a 16,384-element tanh on Zen 5, where the
// element-wise products and sums, bound by the caches, gain nothing and stay on AVX2. The formulas are
// xsimd's generic ones for both widths: in the optimized build every element gets the AVX2 version's
// bits (4M values checked); where the compiler fuses a multiply and an add differently in the two
// files (the -O1 sanitizer build) the last bit may differ, as between baseline and AVX2 (tested).
#define REWIND_SIMD_NS avx512
#define REWIND_SIMD_ARCH xsimd::avx512f
#include "simd_arch.hpp"

namespace rwd::kernels::simd::avx512 {

template void unary_t<float>(Unary, const float*, float*, std::size_t);
template void unary_t<double>(Unary, const double*, double*, std::size_t);

}  // namespace rwd::kernels::simd::avx512
