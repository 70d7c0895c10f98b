// y = |x|
// dx += dy ⊙ sign(x)    (sign(0) = 0, as in PyTorch)
#include "op.hpp"

namespace rwd {

Tensor abs(const Tensor& x) {
  Tensor y = detail::map("abs", x, [](const auto& a) { return xt::abs(a); });
  return record("abs", {x}, y, "dx += dy⊙sign(x)", [](BackwardContext& c) {
    const Tensor sign = detail::map("abs", c.input(0), [](const auto& a) { return xt::sign(a); });
    c.accumulate(0, c.grad_out() * sign);
  });
}

}  // namespace rwd
