// rewind/kernels/simd.hpp — the element-wise loops that dominate a recurrent cell, in the widest
// vectors the CPU has (library-internal).
//
// The library is compiled for baseline x86-64 (SSE2), so that it runs on any 64-bit PC. These few
// loops — tanh, sigmoid and their backward, the same-shape products and sums of the gate arithmetic —
// also exist compiled for AVX2 + FMA (simd_avx2.cpp), and each call takes that version when the CPU
// has it (checked once). Both versions compute the same formulas; results may differ in the last bit
// (FMA rounds once). tanh, sigmoid and exp also exist for AVX-512 (simd_avx512.cpp), the AVX2
// version's formulas (and, in the optimized build, its bits).
//
// log and pow run xsimd's vectorized formulas on baseline batches, with std::log / std::pow for the
// last n mod width elements: the values xtensor's xt::log / xt::pow gave these ops before (bit for bit),
// which differ from std::log in about 7% of values by 1 ulp and from std::pow in about half of them by
// up to 3 ulp. Keeping them keeps every figure the examples print.
//
// Every function here works on one contiguous range of n elements and splits it across threads
// (pool.hpp) when it is long enough, at multiples of 16 elements: whole batches of every width, so
// each element gets the formula it gets on one thread (log and pow's elements past the last whole
// batch take the scalar std:: function; the others run the batch formula on a padded batch).
#pragma once

#include <cstddef>

namespace rwd::kernels {

enum class Binary { add, sub, mul, div };
enum class Unary { tanh, sigmoid, exp };
enum class Backward { tanh, sigmoid };  // dx = dy ⊙ (1 − y²), dy ⊙ y ⊙ (1 − y)

namespace simd {

/// Whether this CPU runs the AVX2 + FMA versions (not when the environment sets REWIND_NO_AVX2).
bool wide();
/// The widest version this CPU runs: 0 baseline, 1 AVX2 + FMA, 2 AVX-512F + FMA for tanh, sigmoid and
/// exp (the AVX2 version's formulas — and, optimized, its bits — with twice the lanes; the other loops
/// stay on AVX2, where the caches bound them). REWIND_NO_AVX2 in the environment caps it at 0,
/// REWIND_NO_AVX512 at 1.
int level();

// For T = float and double (instantiated in simd.cpp).
/// out[i] = a[i] ⊕ b[i] for i in [0, n).
template <class T>
void binary(Binary op, const T* a, const T* b, T* out, std::size_t n);
/// y[i] = f(x[i]) for i in [0, n).
template <class T>
void unary(Unary op, const T* x, T* y, std::size_t n);
/// dx[i] = dy[i] ⊙ f'(y[i]) from the output y, for i in [0, n).
template <class T>
void backward(Backward op, const T* dy, const T* y, T* dx, std::size_t n);

/// Elements per baseline batch (log and pow: the elements past the last whole batch, and the special
/// values xsimd's batch formulas get wrong (simd_arch.hpp), take std::).
template <class T>
std::size_t width();
/// y[i] = ln x[i] for i in [0, n) (baseline batches, see above).
template <class T>
void log(const T* x, T* y, std::size_t n);
/// y[i] = x[i]^p for i in [0, n) (baseline batches).
template <class T>
void pow(const T* x, T p, T* y, std::size_t n);
/// y[i] = x[i]^p[i] for i in [0, n) (baseline batches).
template <class T>
void pow(const T* x, const T* p, T* y, std::size_t n);

// The loops of one width, as simd.cpp chooses between them (and the tests compare them): AVX2 + FMA
// (simd_avx2.cpp) and AVX-512F (simd_avx512.cpp, the unary ones), for T = float and double. Call them
// only where the CPU has the instructions.
namespace avx2 {
template <class T>
void binary_t(Binary op, const T* a, const T* b, T* out, std::size_t n);
template <class T>
void unary_t(Unary op, const T* x, T* y, std::size_t n);
template <class T>
void backward_t(Backward op, const T* dy, const T* y, T* dx, std::size_t n);
}  // namespace avx2
namespace avx512 {
template <class T>
void unary_t(Unary op, const T* x, T* y, std::size_t n);
}  // namespace avx512

}  // namespace simd
}  // namespace rwd::kernels
