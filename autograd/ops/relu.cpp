// y = max(x, 0)
// backward: prim::relu (autograd/primitives.hpp): dx = dy where x > 0, else 0 — selected, not dy·mask,
// so an infinite or NaN dy (sqrt'(0) above a relu) gives 0 where x ≤ 0, as PyTorch's
// threshold_backward, instead of inf·0 = NaN. The mask is a constant: its own derivative is zero.
#include "op.hpp"

namespace rwd {

Tensor relu(const Tensor& x) {
  // !(v ≤ 0), not v > 0: a NaN passes on, in the value and (dy) in the gradient, as PyTorch's relu
  // (clamp_min) and threshold_backward do — a diverged input is not hidden as 0.
  Tensor y = kernels::map("relu", x, [](auto v) { return !(v <= 0) ? v : decltype(v)(0); });
  return record(prim::relu, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, detail::select_grad("relu", c.grad_out(), c.input(0), [](auto v) { return !(v <= 0); }));
  });
}

}  // namespace rwd
