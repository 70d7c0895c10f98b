// y = eˣ
// dx += dy ⊙ y
#include "op.hpp"

namespace rwd {

Tensor exp(const Tensor& x) {
  Tensor y = kernels::unary("exp", x, kernels::Unary::exp);
  return record("exp", {x}, y, "dx += dy⊙y", [](BackwardContext& c) { c.accumulate(0, c.grad_out() * c.output()); });
}

}  // namespace rwd
