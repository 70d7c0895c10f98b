// y = max(x, 0)
// dx += dy ⊙ [x > 0]    (the mask is a constant: its own derivative is zero)
#include "op.hpp"

namespace rwd {

Tensor relu(const Tensor& x) {
  Tensor y = detail::map("relu", x, [](const auto& a) {
    using T = typename std::decay_t<decltype(a)>::value_type;
    return xt::maximum(a, T(0));
  });
  return record("relu", {x}, y, "dx += dy⊙[x>0]", [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * detail::mask_where("relu", c.input(0), [](auto v) { return v > 0; }));
  });
}

}  // namespace rwd
