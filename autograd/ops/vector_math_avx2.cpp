// The AVX2 + FMA compilation of vector_math_kernels.hpp (this file alone is built with -mavx2 -mfma;
// vector_math.cpp calls it only on a CPU that has both).
#define REWIND_VM_NS avx2
#define REWIND_VM_ARCH xsimd::fma3<xsimd::avx2>
#include "vector_math_kernels.hpp"

namespace rwd::detail::vm::avx2 {

void binary_f32(Binary op, const float* a, const float* b, float* out, std::size_t n) { binary_t(op, a, b, out, n); }
void binary_f64(Binary op, const double* a, const double* b, double* out, std::size_t n) { binary_t(op, a, b, out, n); }
void unary_f32(Unary op, const float* x, float* y, std::size_t n) { unary_t(op, x, y, n); }
void unary_f64(Unary op, const double* x, double* y, std::size_t n) { unary_t(op, x, y, n); }
void backward_f32(Backward op, const float* dy, const float* y, float* dx, std::size_t n) { backward_t(op, dy, y, dx, n); }
void backward_f64(Backward op, const double* dy, const double* y, double* dx, std::size_t n) { backward_t(op, dy, y, dx, n); }

}  // namespace rwd::detail::vm::avx2
