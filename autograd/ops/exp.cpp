// y = eˣ
// backward: prim::exp (autograd/primitives.hpp): eˣ is its own derivative, so the output is reused
#include "op.hpp"

namespace rwd {

Tensor exp(const Tensor& x) {
  Tensor y = kernels::unary("exp", x, kernels::Unary::exp);
  return record(prim::exp, {x}, y, [](BackwardContext& c) { c.accumulate(0, c.grad_out() * c.output()); });
}

}  // namespace rwd
