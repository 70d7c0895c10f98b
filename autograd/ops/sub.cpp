// z = a − b   (NumPy broadcasting)
// backward: prim::sub (autograd/primitives.hpp), each adjoint summed back over broadcast dimensions
#include "op.hpp"

namespace rwd {

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("sub", a, b, [](auto x, auto y) { return x - y; }, kernels::Binary::sub);
  return record(prim::sub, {a, b}, z, [](BackwardContext& c) {
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(c.grad_out(), c.input(0).shape()));
    if (c.needs_grad(1)) c.accumulate(1, sum_to_shape(-c.grad_out(), c.input(1).shape()));
  });
}

}  // namespace rwd
