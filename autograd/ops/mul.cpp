// z = a ⊙ b   (NumPy broadcasting)
// backward: prim::mul (autograd/primitives.hpp), each adjoint summed back over broadcast dimensions
#include "op.hpp"

namespace rwd {

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("mul", a, b, [](auto x, auto y) { return x * y; }, kernels::Binary::mul);
  return record(prim::mul, {a, b}, z, [](BackwardContext& c) {
    const Tensor &a = c.input(0), &b = c.input(1), &dz = c.grad_out();
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(dz * b, a.shape()));
    if (c.needs_grad(1)) c.accumulate(1, sum_to_shape(dz * a, b.shape()));
  });
}

}  // namespace rwd
