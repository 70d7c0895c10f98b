// The baseline compilation of simd_arch.hpp, and the choice between it, the AVX2 one and the AVX-512 one.
#define REWIND_SIMD_NS base
#define REWIND_SIMD_ARCH xsimd::default_arch
#include "simd_arch.hpp"

#include <cstdlib>

#include "pool.hpp"

namespace rwd::kernels::simd {

// REWIND_NO_AVX2 (set to anything) keeps the baseline loops, REWIND_NO_AVX512 the AVX2 ones: for
// tests, and for comparing them.
int level() {
  static const int l = [] {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma") || std::getenv("REWIND_NO_AVX2")) return 0;
    if (!__builtin_cpu_supports("avx512f") || std::getenv("REWIND_NO_AVX512")) return 1;
    return 2;
  }();
  return l;
}
bool wide() { return level() >= 1; }

// Each entry splits its range across threads (pool.hpp) when it is long enough, at multiples of 16
// elements: whole batches of every width (16 floats is AVX-512's), so each element takes the batch
// formula or the scalar tail's exactly as on one thread (the two may round differently where FMA
// contracts one of them, and log and pow's tails are std:: functions).
constexpr std::size_t kSplit = 16;

template <class T>
void binary(Binary op, const T* a, const T* b, T* out, std::size_t n) {
  parallel_for(
      n, grain_cheap,
      [&](std::size_t i, std::size_t e) {
        wide() ? avx2::binary_t(op, a + i, b + i, out + i, e - i) : base::binary_t(op, a + i, b + i, out + i, e - i);
      },
      kSplit);
}
template <class T>
void unary(Unary op, const T* x, T* y, std::size_t n) {
  parallel_for(
      n, grain_math,
      [&](std::size_t i, std::size_t e) {
        const int l = level();
        l == 2   ? avx512::unary_t(op, x + i, y + i, e - i)
        : l == 1 ? avx2::unary_t(op, x + i, y + i, e - i)
                 : base::unary_t(op, x + i, y + i, e - i);
      },
      kSplit);
}
template <class T>
void backward(Backward op, const T* dy, const T* y, T* dx, std::size_t n) {
  parallel_for(
      n, grain_cheap,
      [&](std::size_t i, std::size_t e) {
        wide() ? avx2::backward_t(op, dy + i, y + i, dx + i, e - i)
               : base::backward_t(op, dy + i, y + i, dx + i, e - i);
      },
      kSplit);
}

// Always the baseline batches (simd.hpp: the bits xtensor gave these ops).
template <class T>
std::size_t width() {
  return xsimd::batch<T, base::Arch>::size;
}
template <class T>
void log(const T* x, T* y, std::size_t n) {
  parallel_for(n, grain_math, [&](std::size_t i, std::size_t e) { base::log_t(x + i, y + i, e - i); }, kSplit);
}
template <class T>
void pow(const T* x, T p, T* y, std::size_t n) {
  parallel_for(n, grain_math, [&](std::size_t i, std::size_t e) { base::pow_t(x + i, p, y + i, e - i); }, kSplit);
}
template <class T>
void pow(const T* x, const T* p, T* y, std::size_t n) {
  parallel_for(n, grain_math, [&](std::size_t i, std::size_t e) { base::pow_t(x + i, p + i, y + i, e - i); }, kSplit);
}

#define REWIND_SIMD_INSTANTIATE(T)                                             \
  template void binary<T>(Binary, const T*, const T*, T*, std::size_t);        \
  template void unary<T>(Unary, const T*, T*, std::size_t);                    \
  template void backward<T>(Backward, const T*, const T*, T*, std::size_t);    \
  template std::size_t width<T>();                                             \
  template void log<T>(const T*, T*, std::size_t);                             \
  template void pow<T>(const T*, T, T*, std::size_t);                          \
  template void pow<T>(const T*, const T*, T*, std::size_t);
REWIND_SIMD_INSTANTIATE(float)
REWIND_SIMD_INSTANTIATE(double)
#undef REWIND_SIMD_INSTANTIATE

}  // namespace rwd::kernels::simd
