// y = σ(x) = 1 / (1 + e⁻ˣ)
// dx += dy ⊙ y ⊙ (1 − y)
#include "op.hpp"

namespace rwd {

Tensor sigmoid(const Tensor& x) {
  // Computed as ½(1 + tanh(x/2)): the same function, with no overflow of e⁻ˣ for very negative x.
  Tensor y = detail::map("sigmoid", x, [](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    return T(0.5) * (T(1) + xt::tanh(T(0.5) * a));
  });
  return record("sigmoid", {x}, y, "dx += dy⊙y⊙(1−y)", [](BackwardContext& c) {
    const Tensor& y = c.output();
    if (GradMode::enabled())  // create_graph: composed of ops, so it can be differentiated again
      c.accumulate(0, c.grad_out() * y * (1.0 - y));
    else  // the same formula in one loop
      c.accumulate(0, detail::binary("sigmoid", c.grad_out(), y, [](auto dy, auto v) { return dy * v * (1 - v); }));
  });
}

}  // namespace rwd
