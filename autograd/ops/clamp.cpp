// y = min(max(x, lo), hi)
// backward: prim::clamp (autograd/primitives.hpp), the mask inclusive at the bounds, as PyTorch
#include "op.hpp"

namespace rwd {

Tensor clamp(const Tensor& x, double lo, double hi) {
  if (lo > hi) throw ValueError("clamp: lo (" + std::to_string(lo) + ") is greater than hi (" + std::to_string(hi) + ")");
  Tensor y = kernels::map("clamp", x, [lo, hi](auto v) {
    using T = decltype(v);
    return std::min(std::max(v, static_cast<T>(lo)), static_cast<T>(hi));
  });
  return record(prim::clamp, {x}, y, [lo, hi](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * kernels::mask("clamp", c.input(0), [lo, hi](auto v) { return v >= lo && v <= hi; }));
  });
}

}  // namespace rwd
