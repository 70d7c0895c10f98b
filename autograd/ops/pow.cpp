// y = xᵖ, p a number            backward: prim::pow (autograd/primitives.hpp)
// z = xᵖ, p a tensor (broadcast)  backward: prim::pow_tensor — ∂(xᵖ)/∂p = xᵖ·ln x = z·ln x
#include "op.hpp"

namespace rwd {

Tensor pow(const Tensor& x, double p) {
  Tensor y = kernels::pow("pow", x, p);
  return record(prim::pow, {x}, y, [p](BackwardContext& c) {
    // x⁰ ≡ 1 has no slope, at x = 0 too, where p·x^(p−1) would be 0·inf (PyTorch's pow_backward: zeros)
    if (p == 0.0) return c.accumulate(0, Tensor::zeros(c.input(0).shape(), c.input(0).dtype()));
    c.accumulate(0, c.grad_out() * (p * pow(c.input(0), p - 1.0)));
  });
}

Tensor pow(const Tensor& x, const Tensor& p) {
  Tensor z = kernels::pow("pow", x, p);
  return record(prim::pow_tensor, {x, p}, z, [](BackwardContext& c) {
    const Tensor &x = c.input(0), &p = c.input(1), &dz = c.grad_out();
    const Tensor zero = detail::scalar_like(dz, 0.0);
    // Where p = 0, xᵖ ≡ 1: no slope in x (not 0·x⁻¹ = NaN at x = 0); where x = 0 and p ≥ 0, 0ᵖ is
    // constant in p: no slope in p (not 0·ln 0 = NaN) — PyTorch's pow_backward_self / _exponent. As
    // there, dz multiplies the exponent's slope outside the choice: an infinite or NaN dz gives NaN
    // at a zero base (dz·0), while x's slope is chosen with dz inside (0 where p = 0, whatever dz).
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(where(eq(p, 0.0), zero, dz * p * pow(x, p - 1.0)), x.shape()));
    if (c.needs_grad(1))
      c.accumulate(1, sum_to_shape(dz * where(eq(x, 0.0) * ge(p, 0.0), zero, c.output() * log(x)), p.shape()));
  });
}

}  // namespace rwd
