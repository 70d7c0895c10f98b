// z = a + b   (NumPy broadcasting)
// da += Σ_broadcast dz;  db += Σ_broadcast dz
#include "op.hpp"

namespace rwd {

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor z = kernels::binary("add", a, b, [](auto x, auto y) { return x + y; }, kernels::Binary::add);
  return record("add", {a, b}, z, "da += dz; db += dz (summed to shape)", [](BackwardContext& c) {
    for (std::size_t i = 0; i < 2; ++i)
      if (c.needs_grad(i)) c.accumulate(i, sum_to_shape(c.grad_out(), c.input(i).shape()));
  });
}

}  // namespace rwd
