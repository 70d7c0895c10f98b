// y = x viewed with a new shape (same elements, row-major order)
// backward: prim::reshape (autograd/primitives.hpp)
#include "op.hpp"

namespace rwd {

Tensor reshape(const Tensor& x, const Shape& shape) {
  const Shape sx = x.shape();
  if (sx.numel() != shape.numel())
    throw_shape_error("reshape", {{"input", sx}, {"target", shape}},
                      "cannot reshape " + std::to_string(sx.numel()) + " elements into " +
                          std::to_string(shape.numel()));
  if (sx == shape) return x;
  // Every tensor is contiguous and row-major, so the new shape reads the same run of values: a view.
  Tensor y = detail::make_view(x, 0, shape, "reshape");
  return record(prim::reshape, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, reshape(c.grad_out(), c.input(0).shape()));
  });
}

}  // namespace rwd
