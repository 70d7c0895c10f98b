// y = [x₀ x₁ … ] joined along `axis`
// backward: prim::concat (autograd/primitives.hpp): each input takes its own span of dy
#include "op.hpp"

namespace rwd {

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw ValueError("concat: no tensors to join");
  const Shape s0 = xs[0].shape();
  const std::size_t ax = normalize_axis("concat", axis, s0);
  Shape so = s0;
  so[ax] = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape si = xs[i].shape();
    detail::check_same_dtype("concat", xs[0], xs[i]);
    bool ok = si.ndim() == s0.ndim();
    for (std::size_t d = 0; ok && d < s0.ndim(); ++d) ok = d == ax || si[d] == s0[d];
    if (!ok)
      throw_shape_error("concat", {{"tensor 0", s0}, {("tensor " + std::to_string(i)).c_str(), si}},
                        "all dimensions but axis " + std::to_string(axis) + " must match");
    so[ax] += si[ax];
  }
  Tensor y = kernels::concat("concat", xs, ax, so);
  return record(prim::concat, xs, y, [axis, ax](BackwardContext& c) {
    std::size_t offset = 0;
    for (std::size_t i = 0; i < c.num_inputs(); ++i) {
      const std::size_t n = c.input(i).shape()[ax];
      if (c.needs_grad(i)) c.accumulate(i, slice(c.grad_out(), axis, offset, offset + n));
      offset += n;
    }
  });
}

}  // namespace rwd
