// y = x viewed with a new shape (same elements, row-major order)
// dx += reshape(dy, x.shape)
#include <algorithm>

#include "op.hpp"

namespace rwd {

Tensor reshape(const Tensor& x, const Shape& shape) {
  const Shape sx = x.shape();
  if (sx.numel() != shape.numel())
    throw_shape_error("reshape", {{"input", sx}, {"target", shape}},
                      "cannot reshape " + std::to_string(sx.numel()) + " elements into " +
                          std::to_string(shape.numel()));
  if (sx == shape) return x;
  Tensor y = detail::empty_tensor(shape, x.dtype());
  detail::visit_dtype(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const detail::Array<T>& a = detail::array<T>(x, "reshape");
    std::copy(a.data(), a.data() + a.size(), detail::array_mut<T>(y, "reshape").data());
  });
  return record("reshape", {x}, y, "dx += reshape(dy, x.shape)", [](BackwardContext& c) {
    c.accumulate(0, reshape(c.grad_out(), c.input(0).shape()));
  });
}

}  // namespace rwd
