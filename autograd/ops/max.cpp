// y = max_axis x
// backward: prim::max (autograd/primitives.hpp) — the first maximal element takes the whole adjoint
#include "op.hpp"

namespace rwd {

Tensor max(const Tensor& x, int axis, bool keepdims) {
  const Shape sx = x.shape();
  const std::size_t ax = normalize_axis("max", axis, sx);
  if (sx[ax] == 0) throw_shape_error("max", {{"input", sx}}, "cannot take the max over an empty axis");
  Shape kept = sx, reduced;
  kept[ax] = 1;
  for (std::size_t d = 0; d < sx.ndim(); ++d)
    if (d != ax) reduced.push_back(sx[d]);
  Tensor mask;  // the one-hot of each lane's first maximum, x's shape
  Tensor y = kernels::max("max", x, ax, keepdims ? kept : reduced, mask);
  return record(prim::max, {x}, y, [kept, mask](BackwardContext& c) {
    c.accumulate(0, broadcast_to(reshape(c.grad_out(), kept), c.input(0).shape()) * mask);
  });
}

}  // namespace rwd
