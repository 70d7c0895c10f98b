// y = x with its axes reordered: y.shape[i] = x.shape[axes[i]]
// backward: prim::permute (autograd/primitives.hpp): the inverse permutation
#include "op.hpp"

namespace rwd {

Tensor permute(const Tensor& x, const std::vector<int>& axes) {
  const Shape sx = x.shape();
  std::vector<std::size_t> perm, inverse(sx.ndim());
  std::vector<bool> seen(sx.ndim(), false);
  if (axes.size() != sx.ndim())
    throw_shape_error("permute", {{"input", sx}},
                      std::to_string(axes.size()) + " axes given for " + std::to_string(sx.ndim()) + " dimensions");
  for (int a : axes) {
    const std::size_t k = normalize_axis("permute", a, sx);
    if (seen[k]) throw_shape_error("permute", {{"input", sx}}, "axis " + std::to_string(a) + " is listed twice");
    seen[k] = true;
    inverse[k] = perm.size();
    perm.push_back(k);
  }
  Tensor y = kernels::permute("permute", x, perm);
  std::vector<int> inv(inverse.begin(), inverse.end());
  return record(prim::permute, {x}, y, [inv](BackwardContext& c) {
    c.accumulate(0, permute(c.grad_out(), inv));
  });
}

}  // namespace rwd
