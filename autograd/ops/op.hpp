// rewind/autograd/ops/op.hpp — what every primitive's file includes (library-internal).
//
// A primitive's file reads, top to bottom: the math as a comment, the shape check, the forward
// (an xtensor expression over the operands' arrays), and the backward (rewind ops on the context,
// so that a create_graph sweep can differentiate it again). See tanh.cpp for the shape of one.
#pragma once

#include <xtensor/xbroadcast.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xview.hpp>

#include "../../core/detail/impl.hpp"
#include "../ops.hpp"
#include "../tape.hpp"
#include "kernels.hpp"
#include "vector_math.hpp"

namespace rwd::detail {

/// A constant 0/1 tensor of x's shape and dtype: 1 where pred(x) holds (relu, clamp, abs masks).
template <class Pred>
Tensor mask_where(const char* op, const Tensor& x, Pred pred) {
  return map(op, x, [&](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    Array<T> m(a.shape());
    auto out = m.begin();
    for (auto v : a) *out++ = pred(v) ? T(1) : T(0);
    return m;
  });
}

/// A shape seen as (outer, n, inner) around one axis: element [o, i, r] sits at (o·n + i)·inner + r.
struct AxisSplit {
  std::size_t outer = 1, n = 1, inner = 1;
};
inline AxisSplit split_at(const Shape& s, std::size_t axis) {
  AxisSplit a;
  for (std::size_t i = 0; i < s.ndim(); ++i) {
    if (i < axis) a.outer *= s[i];
    else if (i > axis) a.inner *= s[i];
  }
  a.n = s[axis];
  return a;
}

/// Throws ValueError unless every index is in [0, n), naming the op and the offending position.
void check_indices(const char* op, const Indices& indices, std::size_t n, std::size_t axis, const Shape& shape);

/// z = f(a, b) element-wise with NumPy broadcasting, f taking and returning scalars (add, sub, mul,
/// div): plain loops planned by broadcast_binary, no expression templates.
/// `kind` names f for the same-shape case, which runs vm::binary (the CPU's widest vectors).
template <class F>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, F f, vm::Binary kind) {
  check_same_dtype(op, a, b);
  const Shape sa = a.shape(), sb = b.shape();
  const Shape so = broadcast_shapes(op, sa, sb);
  Tensor z = empty_tensor(so, a.dtype());
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = array_mut<T>(z, op).data();
    const T* pa = array<T>(a, op).data();
    const T* pb = array<T>(b, op).data();
    if (sa == sb) vm::binary(kind, pa, pb, out, so.numel());
    else broadcast_binary<T>(so, pa, sa, pb, sb, out, f);
  });
  return z;
}

/// y = f(x) for tanh, sigmoid, exp: vm::unary over the contiguous values.
inline Tensor unary(const char* op, const Tensor& x, vm::Unary kind) {
  Tensor y = empty_tensor(x.shape(), x.dtype());
  visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Array<T>& a = array<T>(x, op);
    vm::unary(kind, a.data(), array_mut<T>(y, op).data(), a.size());
  });
  return y;
}

/// dx = dy ⊙ f'(y) for tanh and sigmoid from their output y (same shapes), in one vm::backward loop.
inline Tensor unary_backward(const char* op, const Tensor& dy, const Tensor& y, vm::Backward kind) {
  check_same_dtype(op, dy, y);
  Tensor dx = empty_tensor(y.shape(), y.dtype());
  visit_dtype(y.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Array<T>& v = array<T>(y, op);
    vm::backward(kind, array<T>(dy, op).data(), v.data(), array_mut<T>(dx, op).data(), v.size());
  });
  return dx;
}

/// A scalar of x's dtype (for writing formulas like 1 − y²).
inline Tensor scalar_like(const Tensor& x, double v) { return Tensor::scalar(v, x.dtype()); }

}  // namespace rwd::detail
