// y = max(x, 0)
// backward: prim::relu (autograd/primitives.hpp); the mask is a constant: its own derivative is zero
#include "op.hpp"

namespace rwd {

Tensor relu(const Tensor& x) {
  Tensor y = kernels::map("relu", x, [](auto v) { return v > 0 ? v : decltype(v)(0); });
  return record(prim::relu, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * kernels::mask("relu", c.input(0), [](auto v) { return v > 0; }));
  });
}

}  // namespace rwd
