// y = x repeated along its size-1 (and missing leading) dimensions up to `shape` (NumPy rules)
// backward: prim::broadcast_to (autograd/primitives.hpp) — sum_to_shape(dy, x.shape): each copy
// sends its adjoint back to the one element it copied
#include "op.hpp"

namespace rwd {

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  const Shape sx = x.shape();
  if (sx == shape) return x;
  bool ok = sx.ndim() <= shape.ndim();
  for (std::size_t k = 1; ok && k <= sx.ndim(); ++k) {
    const std::size_t a = sx[sx.ndim() - k], b = shape[shape.ndim() - k];
    ok = a == b || a == 1;
  }
  if (!ok)
    throw_shape_error("broadcast_to", {{"input", sx}, {"target", shape}},
                      "each input dimension must equal the target's (aligned from the right) or be 1");
  Tensor y = kernels::broadcast_to("broadcast_to", x, shape);
  return record(prim::broadcast_to, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, sum_to_shape(c.grad_out(), c.input(0).shape()));
  });
}

}  // namespace rwd
