// The AVX2 + FMA compilation of simd_arch.hpp (this file alone is built with -mavx2 -mfma; simd.cpp
// calls it only on a CPU that has both).
#define REWIND_SIMD_NS avx2
#define REWIND_SIMD_ARCH xsimd::fma3<xsimd::avx2>
#include "simd_arch.hpp"

namespace rwd::kernels::simd::avx2 {

template void binary_t<float>(Binary, const float*, const float*, float*, std::size_t);
template void binary_t<double>(Binary, const double*, const double*, double*, std::size_t);
template void unary_t<float>(Unary, const float*, float*, std::size_t);
template void unary_t<double>(Unary, const double*, double*, std::size_t);
template void backward_t<float>(Backward, const float*, const float*, float*, std::size_t);
template void backward_t<double>(Backward, const double*, const double*, double*, std::size_t);

}  // namespace rwd::kernels::simd::avx2
