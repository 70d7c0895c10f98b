// y = √x
// backward: prim::sqrt (autograd/primitives.hpp): (√x)' = 1/(2√x), from the output
#include "op.hpp"

namespace rwd {

Tensor sqrt(const Tensor& x) {
  Tensor y = kernels::map("sqrt", x, [](auto v) { return std::sqrt(v); });
  return record(prim::sqrt, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, c.grad_out() / (2.0 * c.output()));
  });
}

}  // namespace rwd
