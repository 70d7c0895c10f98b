// The baseline compilation of vector_math_kernels.hpp, and the choice between it and the AVX2 one.
#define REWIND_VM_NS base
#define REWIND_VM_ARCH xsimd::default_arch
#include "vector_math_kernels.hpp"

#include <cstdlib>

namespace rwd::detail::vm {

namespace avx2 {  // instantiated for float and double in vector_math_avx2.cpp
template <class T>
void binary_t(Binary op, const T* a, const T* b, T* out, std::size_t n);
template <class T>
void unary_t(Unary op, const T* x, T* y, std::size_t n);
template <class T>
void backward_t(Backward op, const T* dy, const T* y, T* dx, std::size_t n);
}  // namespace avx2

// REWIND_NO_AVX2 (set to anything) keeps the baseline loops: for tests, and for comparing the two.
bool wide() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !std::getenv("REWIND_NO_AVX2");
  return yes;
}

template <class T>
void binary(Binary op, const T* a, const T* b, T* out, std::size_t n) {
  wide() ? avx2::binary_t(op, a, b, out, n) : base::binary_t(op, a, b, out, n);
}
template <class T>
void unary(Unary op, const T* x, T* y, std::size_t n) {
  wide() ? avx2::unary_t(op, x, y, n) : base::unary_t(op, x, y, n);
}
template <class T>
void backward(Backward op, const T* dy, const T* y, T* dx, std::size_t n) {
  wide() ? avx2::backward_t(op, dy, y, dx, n) : base::backward_t(op, dy, y, dx, n);
}

template void binary<float>(Binary, const float*, const float*, float*, std::size_t);
template void binary<double>(Binary, const double*, const double*, double*, std::size_t);
template void unary<float>(Unary, const float*, float*, std::size_t);
template void unary<double>(Unary, const double*, double*, std::size_t);
template void backward<float>(Backward, const float*, const float*, float*, std::size_t);
template void backward<double>(Backward, const double*, const double*, double*, std::size_t);

}  // namespace rwd::detail::vm
