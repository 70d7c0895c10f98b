// rewind/kernels/output.hpp — the one way a tensor-level kernel makes its output (library-internal):
// allocate it, pick the dtype, hand the loop raw pointers. elementwise and copy both build on it.
#pragma once

#include "../core/detail/impl.hpp"

namespace rwd::kernels {

/// A new tensor of zeros, filled across the pool when large (Tensor::zeros, in core/, fills on one
/// thread): the sweep's adjoints that a slice's gradient is added into start here.
Tensor zeros(const Shape& shape, Dtype dtype);

/// A new tensor of `shape` and x's dtype (zeros when `zeroed`, else not initialized), filled by
/// body(x's values, the output's values) in that dtype.
template <class Body>
Tensor produce(const char* op, const Tensor& x, const Shape& shape, bool zeroed, Body body) {
  Tensor y = zeroed ? zeros(shape, x.dtype()) : detail::empty_tensor(shape, x.dtype());
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    body(detail::data<T>(x, op), detail::data_mut<T>(y, op));
  });
  return y;
}

/// A new tensor of the NumPy broadcast of a and b (same dtype; both checked, naming `op`), filled by
/// body(output shape, a's values, a's shape, b's values, b's shape, the output's values).
template <class Body>
Tensor produce_broadcast(const char* op, const Tensor& a, const Tensor& b, Body body) {
  detail::check_same_dtype(op, a, b);
  const Shape sa = a.shape(), sb = b.shape();
  const Shape so = broadcast_shapes(op, sa, sb);
  Tensor z = detail::empty_tensor(so, a.dtype());
  detail::visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    body(so, detail::data<T>(a, op), sa, detail::data<T>(b, op), sb, detail::data_mut<T>(z, op));
  });
  return z;
}

}  // namespace rwd::kernels
