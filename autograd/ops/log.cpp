// y = ln x
// dx += dy / x
#include "op.hpp"

namespace rwd {

Tensor log(const Tensor& x) {
  Tensor y = detail::map("log", x, [](const auto& a) { return xt::log(a); });
  return record("log", {x}, y, "dx += dy/x", [](BackwardContext& c) { c.accumulate(0, c.grad_out() / c.input(0)); });
}

}  // namespace rwd
