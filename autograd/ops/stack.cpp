// y = [x₀, x₁, …] along a new axis `axis`
// backward: prim::stack (autograd/primitives.hpp): each input takes its own index of dy
#include "op.hpp"

namespace rwd {

Tensor stack(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw ValueError("stack: no tensors to stack");
  const Shape s0 = xs[0].shape();
  const int n = static_cast<int>(s0.ndim()) + 1;
  if (axis < -n || axis >= n)
    throw_shape_error("stack", {{"tensor 0", s0}}, "axis " + std::to_string(axis) + " is out of range for the new axis");
  const auto ax = static_cast<std::size_t>(axis < 0 ? axis + n : axis);
  for (std::size_t i = 1; i < xs.size(); ++i) {
    detail::check_same_dtype("stack", xs[0], xs[i]);
    if (xs[i].shape() != s0)
      throw_shape_error("stack", {{"tensor 0", s0}, {("tensor " + std::to_string(i)).c_str(), xs[i].shape()}},
                        "all tensors must have the same shape");
  }
  Shape so;
  for (std::size_t d = 0; d < s0.ndim(); ++d) {
    if (d == ax) so.push_back(xs.size());
    so.push_back(s0[d]);
  }
  if (ax == s0.ndim()) so.push_back(xs.size());
  Tensor y = kernels::stack("stack", xs, ax, so);
  const int a = static_cast<int>(ax);
  return record(prim::stack, xs, y, [a, s0](BackwardContext& c) {
    for (std::size_t i = 0; i < c.num_inputs(); ++i)
      if (c.needs_grad(i)) c.accumulate(i, reshape(slice(c.grad_out(), a, i, i + 1), s0));
  });
}

}  // namespace rwd
