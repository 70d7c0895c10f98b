// y = x converted to another dtype
// backward: prim::cast (autograd/primitives.hpp)
#include "op.hpp"

namespace rwd {

Tensor cast(const Tensor& x, Dtype dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = kernels::cast("cast", x, dtype);
  return record(prim::cast, {x}, y, [](BackwardContext& c) {
    c.accumulate(0, cast(c.grad_out(), c.input(0).dtype()));
  });
}

}  // namespace rwd
