// z = a − b   (NumPy broadcasting)
// da += Σ_broadcast dz;  db += −Σ_broadcast dz
#include "op.hpp"

namespace rwd {

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("sub", a, b, [](auto x, auto y) { return x - y; }, kernels::Binary::sub);
  return record("sub", {a, b}, z, "da += dz; db −= dz (summed to shape)", [](BackwardContext& c) {
    if (c.needs_grad(0)) c.accumulate(0, sum_to_shape(c.grad_out(), c.input(0).shape()));
    if (c.needs_grad(1)) c.accumulate(1, sum_to_shape(-c.grad_out(), c.input(1).shape()));
  });
}

}  // namespace rwd
