// y = max(x, 0)
// backward: prim::relu (autograd/primitives.hpp); the mask is a constant: its own derivative is zero
#include "op.hpp"

namespace rwd {

Tensor relu(const Tensor& x) {
  // !(v ≤ 0), not v > 0: a NaN passes on, in the value and (dy) in the gradient, as PyTorch's relu
  // (clamp_min) and threshold_backward do — a diverged input is not hidden as 0.
  Tensor y = kernels::map("relu", x, [](auto v) { return !(v <= 0) ? v : decltype(v)(0); });
  return record(prim::relu, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * kernels::mask("relu", c.input(0), [](auto v) { return !(v <= 0); }));
  });
}

}  // namespace rwd
