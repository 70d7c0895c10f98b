// The AVX2 compilation of adam_arch.hpp (this file alone is built with -mavx2, and without -mfma:
// adam.hpp promises the scalar formula's bits). adam.cpp calls it only on a CPU that has AVX2.
#define REWIND_ADAM_NS avx2
#define REWIND_ADAM_ARCH xsimd::avx2
#include "adam_arch.hpp"

namespace rwd::kernels::adam_simd::avx2 {

template void adam_t<float>(const AdamCoefficients<float>&, float*, const float*, float*, float*, float*, std::size_t);
template void adam_t<double>(const AdamCoefficients<double>&, double*, const double*, double*, double*, double*,
                             std::size_t);

}  // namespace rwd::kernels::adam_simd::avx2
