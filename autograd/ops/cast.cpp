// y = x converted to another dtype
// dx += cast(dy, x.dtype)
#include "op.hpp"

namespace rwd {

Tensor cast(const Tensor& x, Dtype dtype) {
  if (x.dtype() == dtype) return x;
  Tensor y = kernels::cast("cast", x, dtype);
  return record("cast", {x}, y, "dx += cast(dy, x.dtype)", [](BackwardContext& c) {
    c.accumulate(0, cast(c.grad_out(), c.input(0).dtype()));
  });
}

}  // namespace rwd
