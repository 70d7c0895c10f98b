// y = tanh(x)
// backward: prim::tanh (autograd/primitives.hpp): tanh' = 1 − tanh², from the output
#include "op.hpp"

namespace rwd {

Tensor tanh(const Tensor& x) {
  Tensor y = kernels::unary("tanh", x, kernels::Unary::tanh);
  return record(prim::tanh, {x}, y, [](BackwardContext& c) {
    const Tensor& y = c.output();
    if (GradMode::enabled())  // create_graph: composed of ops, so it can be differentiated again
      c.accumulate(0, c.grad_out() * (1.0 - y * y));
    else  // the same formula in one loop
      c.accumulate(0, kernels::unary_backward("tanh", c.grad_out(), y, kernels::Backward::tanh));
  });
}

}  // namespace rwd
