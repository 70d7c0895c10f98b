// y = Σ_axes x   (keepdims leaves the summed axes as size 1)
// backward: prim::sum (autograd/primitives.hpp) — every summed element receives its sum's adjoint
#include <algorithm>

#include "op.hpp"

namespace rwd {

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdims) {
  // ---- shape check ----
  const Shape sx = x.shape();
  std::vector<std::size_t> ax;
  for (int a : axes) ax.push_back(normalize_axis("sum", a, sx));
  std::sort(ax.begin(), ax.end());
  if (std::adjacent_find(ax.begin(), ax.end()) != ax.end())
    throw_shape_error("sum", {{"input", sx}}, "an axis is listed twice");
  Shape kept, reduced;  // output shape with and without the size-1 axes
  for (std::size_t i = 0; i < sx.ndim(); ++i) {
    const bool summed = std::binary_search(ax.begin(), ax.end(), i);
    kept.push_back(summed ? 1 : sx[i]);
    if (!summed) reduced.push_back(sx[i]);
  }

  // ---- forward ----
  Tensor y = kernels::sum("sum", x, kept, keepdims ? kept : reduced);

  // ---- backward ----
  return record(prim::sum, {x}, y, [kept](BackwardContext& c) {
    c.accumulate(0, broadcast_to(reshape(c.grad_out(), kept), c.input(0).shape()));
  });
}

Tensor sum(const Tensor& x) {
  std::vector<int> all(x.ndim());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int>(i);
  return sum(x, all, false);
}

}  // namespace rwd
