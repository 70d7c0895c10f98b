// y = min(max(x, lo), hi)
// backward: prim::clamp (autograd/primitives.hpp): dx = dy where lo ≤ x ≤ hi (inclusive at the bounds),
// else 0 — selected, not dy·mask, so an infinite or NaN dy (sqrt'(0) above a clamp at 0) gives 0
// outside the bounds, as PyTorch's clamp_backward, instead of inf·0 = NaN
#include "op.hpp"

namespace rwd {

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) throw ValueError("clamp: lo (" + std::to_string(lo) + ") is greater than hi (" + std::to_string(hi) + ")");
  Tensor y = kernels::map("clamp", x, [lo, hi](auto v) {
    using T = decltype(v);
    return std::min(std::max(v, static_cast<T>(lo)), static_cast<T>(hi));
  });
  return record(prim::clamp, {x}, y, [lo, hi](BackwardContext& c) {
    const Tensor &x = c.input(0), &dy = c.grad_out();
    auto inside = [lo, hi](auto v) { return v >= lo && v <= hi; };  // false for a NaN x, as PyTorch
    if (GradMode::enabled())  // create_graph: where() records, so dx stays differentiable in dy
      c.accumulate(0, where(kernels::mask("clamp", x, inside), dy, detail::scalar_like(dy, 0.0)));
    else  // the same choice in one loop
      c.accumulate(0, kernels::zip("clamp", dy, x,
                                   [inside](auto g, auto v) { return inside(v) ? g : decltype(g)(0); }));
  });
}

}  // namespace rwd
