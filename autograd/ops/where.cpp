// z = cond ≠ 0 ? a : b   (cond, a, b broadcast together; cond is a constant)
// backward: prim::where (autograd/primitives.hpp), each adjoint summed back over broadcast dimensions
#include "op.hpp"

namespace rwd {

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_same_dtype("where", a, b);
  broadcast_shapes("where", broadcast_shapes("where", cond.shape(), a.shape()), b.shape());
  Tensor c = cond.dtype() == a.dtype() ? cond.detach() : cond.detach().to(a.dtype());
  Tensor z = kernels::where("where", c, a, b);
  return record(prim::where, {a, b}, z, [c](BackwardContext& ctx) {
    const Tensor& dz = ctx.grad_out();
    const Tensor zero = detail::scalar_like(dz, 0.0);
    if (ctx.needs_grad(0)) ctx.accumulate(0, sum_to_shape(where(c, dz, zero), ctx.input(0).shape()));
    if (ctx.needs_grad(1)) ctx.accumulate(1, sum_to_shape(where(c, zero, dz), ctx.input(1).shape()));
  });
}

}  // namespace rwd
