// y = ln(1 + x)   — accurate where x is tiny (ln(1 + 1e-18) is 1e-18, not 0)
// backward: prim::log1p (autograd/primitives.hpp)
#include <cmath>

#include "op.hpp"

namespace rwd {

Tensor log1p(const Tensor& x) {
  Tensor y = kernels::map("log1p", x, [](auto v) { return std::log1p(v); });
  return record(prim::log1p, {x}, y,
                [](BackwardContext& c) { c.accumulate(0, c.grad_out() / (1.0 + c.input(0))); });
}

}  // namespace rwd
