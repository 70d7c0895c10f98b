// y = −x
// dx += −dy
#include "op.hpp"

namespace rwd {

Tensor neg(const Tensor& x) {
  Tensor y = kernels::map("neg", x, [](auto v) { return -v; });
  return record("neg", {x}, y, "dx −= dy", [](BackwardContext& c) { c.accumulate(0, -c.grad_out()); });
}

}  // namespace rwd
