// y = xᵖ, p a number            backward: prim::pow (autograd/primitives.hpp)
// z = xᵖ, p a tensor (broadcast)  backward: prim::pow_tensor — ∂(xᵖ)/∂p = xᵖ·ln x = z·ln x
#include "op.hpp"

namespace rwd {

Tensor pow(const Tensor& x, double p) {
  Tensor y = kernels::pow("pow", x, p);
  return record(prim::pow, {x}, y, [p](BackwardContext& c) {
    c.accumulate(0, c.grad_out() * (p * pow(c.input(0), p - 1.0)));
  });
}

Tensor pow(const Tensor& x, const Tensor& p) {
  Tensor z = kernels::pow("pow", x, p);
  return record(prim::pow_tensor, {x, p}, z, [](BackwardContext& c) {
    const Tensor &x = c.input(0), &p = c.input(1), &dz = c.grad_out();
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(dz * p * pow(x, p - 1.0), x.shape()));
    if (c.needs_grad(1)) c.accumulate(1, sum_to_shape(dz * c.output() * log(x), p.shape()));
  });
}

}  // namespace rwd
