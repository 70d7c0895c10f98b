// y = ln x
// dx += dy / x
#include "op.hpp"

namespace rwd {

Tensor log(const Tensor& x) {
  Tensor y = kernels::log("log", x);
  return record("log", {x}, y, "dx += dy/x", [](BackwardContext& c) { c.accumulate(0, c.grad_out() / c.input(0)); });
}

}  // namespace rwd
