// The baseline compilation of vector_math_kernels.hpp, and the choice between it and the AVX2 one.
#define REWIND_VM_NS base
#define REWIND_VM_ARCH xsimd::default_arch
#include "vector_math_kernels.hpp"

#include <cstdlib>

namespace rwd::detail::vm {

namespace avx2 {  // vector_math_avx2.cpp
void binary_f32(Binary op, const float* a, const float* b, float* out, std::size_t n);
void binary_f64(Binary op, const double* a, const double* b, double* out, std::size_t n);
void unary_f32(Unary op, const float* x, float* y, std::size_t n);
void unary_f64(Unary op, const double* x, double* y, std::size_t n);
void backward_f32(Backward op, const float* dy, const float* y, float* dx, std::size_t n);
void backward_f64(Backward op, const double* dy, const double* y, double* dx, std::size_t n);
}  // namespace avx2

// REWIND_NO_AVX2 (set to anything) keeps the baseline loops: for tests, and for comparing the two.
bool wide() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !std::getenv("REWIND_NO_AVX2");
  return yes;
}

void binary(Binary op, const float* a, const float* b, float* out, std::size_t n) {
  wide() ? avx2::binary_f32(op, a, b, out, n) : base::binary_t(op, a, b, out, n);
}
void binary(Binary op, const double* a, const double* b, double* out, std::size_t n) {
  wide() ? avx2::binary_f64(op, a, b, out, n) : base::binary_t(op, a, b, out, n);
}
void unary(Unary op, const float* x, float* y, std::size_t n) {
  wide() ? avx2::unary_f32(op, x, y, n) : base::unary_t(op, x, y, n);
}
void unary(Unary op, const double* x, double* y, std::size_t n) {
  wide() ? avx2::unary_f64(op, x, y, n) : base::unary_t(op, x, y, n);
}
void backward(Backward op, const float* dy, const float* y, float* dx, std::size_t n) {
  wide() ? avx2::backward_f32(op, dy, y, dx, n) : base::backward_t(op, dy, y, dx, n);
}
void backward(Backward op, const double* dy, const double* y, double* dx, std::size_t n) {
  wide() ? avx2::backward_f64(op, dy, y, dx, n) : base::backward_t(op, dy, y, dx, n);
}

}  // namespace rwd::detail::vm
