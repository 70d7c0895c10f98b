// rewind/autograd/ops/kernels.hpp — plain loops for the element-wise and reduction hot paths
// (library-internal).
//
// A broadcast a ⊕ b is planned once as nested loops over the output, each operand with its own
// stride per loop (0 where it is broadcast). Adjacent dimensions that walk memory the same way in
// every operand are merged first, so the common cases collapse to one or two loops:
//
//   (4H, B) + (4H, B)   → 1 loop of 4H·B, strides (1, 1)
//   (4H, B) + (4H, 1)   → 4H × B, inner strides (1, 0)        — a bias column
//   (4H, B) − ()        → 1 loop, strides (1, 0)              — a scalar
//
// and the innermost loop is written once per stride pattern so the compiler vectorizes it.
// A sum over axes is the same plan read the other way: the output has stride 0 along summed axes.
#pragma once

#include <cstddef>

#include "../../core/shape.hpp"

namespace rwd::detail {

/// Loops over an output of `ndim` merged dimensions, with one stride per operand per loop.
struct LoopPlan {
  static constexpr std::size_t max_ops = 3;
  std::size_t ndim = 0;
  std::size_t dims[Shape::max_dims] = {};
  std::ptrdiff_t strides[max_ops][Shape::max_dims] = {};
  std::size_t numel = 1;
};

/// The plan for writing an output of shape `out` from operands of the given shapes (each
/// broadcastable to `out`, right-aligned as NumPy does), operand k's strides in plan.strides[k].
LoopPlan plan_broadcast(const Shape& out, const Shape* operands, std::size_t count);

/// The same from explicit strides: full[k][i] is operand k's step along output dimension i.
LoopPlan plan_loops(const Shape& out, const std::ptrdiff_t (*full)[Shape::max_dims], std::size_t count);

/// Calls body(offsets_of_each_operand, inner_count, inner_strides) once per innermost run.
template <std::size_t N, class Body>
void for_each_run(const LoopPlan& p, Body&& body) {
  if (p.numel == 0) return;
  std::ptrdiff_t off[N] = {};
  std::ptrdiff_t inner[N];
  for (std::size_t k = 0; k < N; ++k) inner[k] = p.ndim ? p.strides[k][p.ndim - 1] : 0;
  const std::size_t n_inner = p.ndim ? p.dims[p.ndim - 1] : 1;
  if (p.ndim <= 1) {
    body(off, n_inner, inner);
    return;
  }
  std::size_t idx[Shape::max_dims] = {};
  const std::size_t outer_dims = p.ndim - 1;
  for (;;) {
    body(off, n_inner, inner);
    // Odometer over the outer dimensions, last fastest.
    std::size_t d = outer_dims;
    while (d > 0) {
      --d;
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += p.strides[k][d];
      if (idx[d] < p.dims[d]) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= p.strides[k][d] * static_cast<std::ptrdiff_t>(p.dims[d]);
      idx[d] = 0;
      if (d == 0) return;
    }
  }
}

/// out[i] = f(a[i'], b[i'']) over a contiguous output of shape `so` (a, b broadcast to it). Same-shape
/// operands go to vm::binary instead (detail::binary).
template <class T, class F>
void broadcast_binary(const Shape& so, const T* a, const Shape& sa, const T* b, const Shape& sb, T* out, F f) {
  const Shape ops[3] = {so, sa, sb};
  const LoopPlan p = plan_broadcast(so, ops, 3);
  for_each_run<3>(p, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
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

/// out (contiguous, shape `so`)[i] = in[Σ i_d · in_strides[d]] — a permuted or strided copy.
template <class T>
void strided_copy(const Shape& so, const T* in, const std::ptrdiff_t* in_strides, T* out) {
  std::ptrdiff_t full[2][Shape::max_dims] = {};
  std::ptrdiff_t stride = 1;
  for (std::size_t d = so.ndim(); d-- > 0;) {
    full[0][d] = so[d] == 1 ? 0 : stride;
    full[1][d] = so[d] == 1 ? 0 : in_strides[d];
    stride *= static_cast<std::ptrdiff_t>(so[d]);
  }
  const LoopPlan p = plan_loops(so, full, 2);
  for_each_run<2>(p, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T* v = in + off[1];
    if (s[1] == 1)
      for (std::size_t i = 0; i < n; ++i) o[i] = v[i];
    else
      for (std::size_t i = 0; i < n; ++i) o[i] = v[i * s[1]];
  });
}

/// out (shape `so`, every summed axis of size 1, same ndim as `sx`) = Σ of x over the axes where
/// so has 1 and sx does not. `out` must hold zeros on entry.
template <class T>
void reduce_sum(const T* x, const Shape& sx, T* out, const Shape& so) {
  const Shape ops[2] = {so, sx};
  // Plan over x's shape: x walks contiguously, the output stays put along summed axes.
  const LoopPlan p = plan_broadcast(sx, ops, 2);
  for_each_run<2>(p, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T* v = x + off[1];
    if (s[0] == 0 && s[1] == 1) {  // a run that sums into one output element
      T acc[8] = {};
      std::size_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += v[i + k];
      T total = (acc[0] + acc[1]) + (acc[2] + acc[3]) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < n; ++i) total += v[i];
      *o += total;
    } else if (s[0] == 1 && s[1] == 1) {
      for (std::size_t i = 0; i < n; ++i) o[i] += v[i];
    } else {
      for (std::size_t i = 0; i < n; ++i) o[i * s[0]] += v[i * s[1]];
    }
  });
}

}  // namespace rwd::detail
