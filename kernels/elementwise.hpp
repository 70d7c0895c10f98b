// rewind/kernels/elementwise.hpp — element-wise maps, with and without broadcasting (library-internal).
//
// Two levels. The loops work on raw pointers: map (one contiguous range [0, n)), map_broadcast and
// select (planned by loops.hpp); each splits across threads (pool.hpp) when it is large enough. The Tensor functions below them allocate the output, pick the
// dtype and call one loop: what an op's forward calls, so an op file reads math → shape check →
// kernel → record. Formulas are the std:: scalar ones, written at the call (`[](auto v) { return -v; }`),
// except where simd.hpp has a vector loop (same-shape + − ⊙ ÷, tanh, sigmoid, exp, log, pow).
#pragma once

#include <cstddef>
#include <type_traits>

#include "../core/detail/impl.hpp"
#include "loops.hpp"
#include "output.hpp"
#include "simd.hpp"

namespace rwd::kernels {

// ---- loops on raw pointers ----

/// y[i] = f(x[i]) for i in [0, n).
template <class T, class F>
void map(const T* x, T* y, std::size_t n, F f) {
  parallel_for(
      n, grain_cheap,
      [&](std::size_t b, std::size_t e) {
        for (std::size_t i = b; i < e; ++i) y[i] = f(x[i]);
      },
      16);
}

/// out[i] = f(a[i'], b[i'']) over a contiguous output of shape `so` (a, b broadcast to it, NumPy rules).
template <class T, class F>
void map_broadcast(const Shape& so, const T* a, const Shape& sa, const T* b, const Shape& sb, T* out, F f) {
  const Shape ops[3] = {so, sa, sb};
  const LoopPlan p = plan_broadcast(so, ops, 3);
  parallel_runs<3>(p, grain_cheap, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T* x = a + off[1];
    const T* y = b + off[2];
    if (s[1] == 1 && s[2] == 1)
      for (std::size_t i = 0; i < n; ++i) o[i] = f(x[i], y[i]);
    else if (s[1] == 1 && s[2] == 0) {
      const T v = *y;
      for (std::size_t i = 0; i < n; ++i) o[i] = f(x[i], v);
    } else if (s[1] == 0 && s[2] == 1) {
      const T v = *x;
      for (std::size_t i = 0; i < n; ++i) o[i] = f(v, y[i]);
    } else
      for (std::size_t i = 0; i < n; ++i) o[i] = f(x[i * s[1]], y[i * s[2]]);
  });
}

/// out[i] = c[i] ≠ 0 ? a[i] : b[i] over a contiguous output of shape `so` (c, a, b broadcast to it).
template <class T>
void select(const Shape& so, const T* c, const Shape& sc, const T* a, const Shape& sa, const T* b, const Shape& sb,
            T* out) {
  const Shape ops[4] = {so, sc, sa, sb};
  const LoopPlan p = plan_broadcast(so, ops, 4);
  parallel_runs<4>(p, grain_cheap, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T *pc = c + off[1], *pa = a + off[2], *pb = b + off[3];
    for (std::size_t i = 0; i < n; ++i) o[i] = pc[i * s[1]] != T(0) ? pa[i * s[2]] : pb[i * s[3]];
  });
}

// ---- on tensors: a new output, one loop ----

/// A new tensor y = f(x) element-wise, f taking and returning a scalar of x's dtype.
template <class F>
Tensor map(const char* op, const Tensor& x, F f) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) { map(in, out, n, f); });
}

/// A constant 0/1 tensor of x's shape and dtype: 1 where pred(x) holds (relu, clamp, abs masks).
template <class Pred>
Tensor mask(const char* op, const Tensor& x, Pred pred) {
  return map(op, x, [&](auto v) { return pred(v) ? decltype(v)(1) : decltype(v)(0); });
}

/// z = f(a, b) element-wise with NumPy broadcasting (checked, naming `op`), f on scalars.
template <class F>
Tensor zip(const char* op, const Tensor& a, const Tensor& b, F f) {
  return produce_broadcast(op, a, b, [&](const Shape& so, const auto* pa, const Shape& sa, const auto* pb,
                                         const Shape& sb, auto* out) { map_broadcast(so, pa, sa, pb, sb, out, f); });
}

/// z = a ⊕ b with broadcasting (add, sub, mul, div): same-shape operands take simd::binary (the CPU's
/// widest vectors), broadcast ones map_broadcast with f, the same formula on scalars.
template <class F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f, Binary kind) {
  return produce_broadcast(op, a, b, [&](const Shape& so, const auto* pa, const Shape& sa, const auto* pb,
                                         const Shape& sb, auto* out) {
    if (sa == sb) simd::binary(kind, pa, pb, out, so.numel());
    else map_broadcast(so, pa, sa, pb, sb, out, f);
  });
}

/// y = f(x) for tanh, sigmoid, exp: simd::unary over the contiguous values.
inline Tensor unary(const char* op, const Tensor& x, Unary kind) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) { simd::unary(kind, in, out, n); });
}

/// dx = dy ⊙ f'(y) for tanh and sigmoid from their output y (same shapes), in one simd::backward loop.
inline Tensor unary_backward(const char* op, const Tensor& dy, const Tensor& y, Backward kind) {
  detail::check_same_dtype(op, dy, y);
  const std::size_t n = y.numel();
  return produce(op, y, y.shape(), false, [&](const auto* pv, auto* out) {
    using T = std::remove_const_t<std::remove_pointer_t<decltype(pv)>>;
    simd::backward(kind, detail::data<T>(dy, op), pv, out, n);
  });
}

/// y = ln x (simd::log).
Tensor log(const char* op, const Tensor& x);
/// y = xᵖ for a number p (simd::pow).
Tensor pow(const char* op, const Tensor& x, double p);
/// z = xᵖ element-wise with broadcasting: simd::pow on runs where both are contiguous, std::pow elsewhere.
Tensor pow(const char* op, const Tensor& x, const Tensor& p);
/// z = cond ≠ 0 ? a : b with broadcasting (cond of a's dtype; checked, naming `op`).
Tensor where(const char* op, const Tensor& cond, const Tensor& a, const Tensor& b);

}  // namespace rwd::kernels
