// y = −x
// backward: prim::neg (autograd/primitives.hpp)
#include "op.hpp"

namespace rwd {

Tensor neg(const Tensor& x) {
  Tensor y = kernels::map("neg", x, [](auto v) { return -v; });
  return record(prim::neg, {x}, y, [](BackwardContext& c) { c.accumulate(0, -c.grad_out()); });
}

}  // namespace rwd
