// The baseline compilation of adam_arch.hpp, and the choice between it and the AVX2 one.
#define REWIND_ADAM_NS base
#define REWIND_ADAM_ARCH xsimd::default_arch
#include "adam_arch.hpp"

#include "pool.hpp"
#include "simd.hpp"

namespace rwd::kernels {

namespace adam_simd::avx2 {  // instantiated for float and double in adam_avx2.cpp
template <class T>
void adam_t(const AdamCoefficients<T>& c, T* p, const T* g, T* m, T* v, T* vmax, std::size_t n);
}  // namespace adam_simd::avx2

template <class T>
void adam_update(const AdamCoefficients<T>& c, T* p, const T* g, T* m, T* v, T* vmax, std::size_t n) {
  // Chunks at multiples of 16 elements: whole batches of every width (the scalar tail computes the
  // same bits anyway, so the split never changes one).
  parallel_for(
      n, grain_update,
      [&](std::size_t b, std::size_t e) {
        T* vm = vmax ? vmax + b : nullptr;
        simd::wide() ? adam_simd::avx2::adam_t(c, p + b, g + b, m + b, v + b, vm, e - b)
               : adam_simd::base::adam_t(c, p + b, g + b, m + b, v + b, vm, e - b);
      },
      16);
}

template void adam_update<float>(const AdamCoefficients<float>&, float*, const float*, float*, float*, float*,
                                 std::size_t);
template void adam_update<double>(const AdamCoefficients<double>&, double*, const double*, double*, double*, double*,
                                  std::size_t);

}  // namespace rwd::kernels
