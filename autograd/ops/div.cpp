// z = a / b   (NumPy broadcasting)
// backward: prim::div (autograd/primitives.hpp); ∂(a/b)/∂b = −a/b² = −z/b, so the output is reused
#include "op.hpp"

namespace rwd {

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("div", a, b, [](auto x, auto y) { return x / y; }, kernels::Binary::div);
  return record(prim::div, {a, b}, z, [](BackwardContext& c) {
    const Tensor &b = c.input(1), &dz = c.grad_out();
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(dz / b, c.input(0).shape()));
    if (c.needs_grad(1)) c.accumulate(1, sum_to_shape(-(dz * c.output() / b), b.shape()));
  });
}

}  // namespace rwd
