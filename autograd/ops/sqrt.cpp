// y = √x
// dx += dy / (2y)
#include "op.hpp"

namespace rwd {

Tensor sqrt(const Tensor& x) {
  Tensor y = detail::map("sqrt", x, [](const auto& a) { return xt::sqrt(a); });
  return record("sqrt", {x}, y, "dx += dy/(2y)", [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() / (2.0 * c.output()));
  });
}

}  // namespace rwd
