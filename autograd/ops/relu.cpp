// y = max(x, 0)
// dx += dy ⊙ [x > 0]    (the mask is a constant: its own derivative is zero)
#include "op.hpp"

namespace rwd {

Tensor relu(const Tensor& x) {
  Tensor y = kernels::map("relu", x, [](auto v) { return v > 0 ? v : decltype(v)(0); });
  return record("relu", {x}, y, "dx += dy⊙[x>0]", [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * kernels::mask("relu", c.input(0), [](auto v) { return v > 0; }));
  });
}

}  // namespace rwd
