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
    auto inside = [lo, hi](auto v) { return v >= lo && v <= hi; };  // false for a NaN x, as PyTorch
    c.accumulate(0, detail::select_grad("clamp", c.grad_out(), c.input(0), inside));
  });
}

}  // namespace rwd
