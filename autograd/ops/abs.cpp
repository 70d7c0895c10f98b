// y = |x|
// backward: prim::abs (autograd/primitives.hpp); sign(0) = 0, as in PyTorch
#include "op.hpp"

namespace rwd {

Tensor abs(const Tensor& x) {
  Tensor y = kernels::map("abs", x, [](auto v) { return std::abs(v); });
  return record(prim::abs, {x}, y, [](BackwardContext& c) {
    // sign(v): ±1, and v itself at ±0 and NaN (a NaN input sends NaN back, as PyTorch)
    const Tensor sign = kernels::map("abs", c.input(0), [](auto v) {
      using T = decltype(v);
      return v > 0 ? T(1) : v < 0 ? T(-1) : v;
    });
    c.accumulate(0, c.grad_out() * sign);
  });
}

}  // namespace rwd
