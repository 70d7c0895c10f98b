// y = tanh(x)
// dx += dy ⊙ (1 − y²)
#include "op.hpp"

namespace rwd {

Tensor tanh(const Tensor& x) {
  Tensor y = detail::map("tanh", x, [](const auto& a) { return xt::tanh(a); });
  return record("tanh", {x}, y, "dx += dy⊙(1−y²)", [](BackwardContext& c) {
    const Tensor& y = c.output();
    c.accumulate(0, c.grad_out() * (1.0 - y * y));
  });
}

}  // namespace rwd
