// z = a + b   (NumPy broadcasting)
// backward: prim::add (autograd/primitives.hpp), each adjoint summed back over broadcast dimensions
#include "op.hpp"

namespace rwd {

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("add", a, b, [](auto x, auto y) { return x + y; }, kernels::Binary::add);
  return record(prim::add, {a, b}, z, [](BackwardContext& c) {
    for (std::size_t i = 0; i < 2; ++i)
      if (c.needs_grad(i)) c.accumulate(i, sum_to_shape(c.grad_out(), c.input(i).shape()));
  });
}

}  // namespace rwd
