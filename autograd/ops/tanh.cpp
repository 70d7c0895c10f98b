// y = tanh(x)
// dx += dy ⊙ (1 − y²)
#include "op.hpp"

namespace rwd {

Tensor tanh(const Tensor& x) {
  Tensor y = detail::map("tanh", x, [](const auto& a) { return xt::tanh(a); });
  return record("tanh", {x}, y, "dx += dy⊙(1−y²)", [](BackwardContext& c) {
    const Tensor& y = c.output();
    if (GradMode::enabled())  // create_graph: composed of ops, so it can be differentiated again
      c.accumulate(0, c.grad_out() * (1.0 - y * y));
    else  // the same formula in one loop
      c.accumulate(0, detail::binary("tanh", c.grad_out(), y, [](auto dy, auto v) { return dy * (1 - v * v); }));
  });
}

}  // namespace rwd
