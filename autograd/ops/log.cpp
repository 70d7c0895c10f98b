// y = ln x
// backward: prim::log (autograd/primitives.hpp)
#include "op.hpp"

namespace rwd {

Tensor log(const Tensor& x) {
  Tensor y = kernels::log("log", x);
  return record(prim::log, {x}, y, [](BackwardContext& c) { c.accumulate(0, c.grad_out() / c.input(0)); });
}

}  // namespace rwd
