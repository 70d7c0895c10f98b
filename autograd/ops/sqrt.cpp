// y = √x
// dx += dy / (2y)
#include "op.hpp"

namespace rwd {

Tensor sqrt(const Tensor& x) {
  Tensor y = kernels::map("sqrt", x, [](auto v) { return std::sqrt(v); });
  return record("sqrt", {x}, y, "dx += dy/(2y)", [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() / (2.0 * c.output()));
  });
}

}  // namespace rwd
