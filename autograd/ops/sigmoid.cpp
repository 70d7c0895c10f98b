// y = σ(x) = 1 / (1 + e⁻ˣ)
// backward: prim::sigmoid (autograd/primitives.hpp): σ' = σ(1 − σ), from the output
#include "op.hpp"

namespace rwd {

Tensor sigmoid(const Tensor& x) {
  // 1 / (1 + e⁻ˣ) as written. Small values keep their relative precision (the form ½(1 + tanh(x/2))
  // loses them to cancellation: it gives 0 already at x = −40 in float64); y becomes 0 only where e⁻ˣ
  // overflows to +inf (x below about −88 in float32, −709 in float64), where σ(x) < 1e-38 (1e-308).
  Tensor y = kernels::unary("sigmoid", x, kernels::Unary::sigmoid);
  return record(prim::sigmoid, {x}, y, [](BackwardContext& c) {
    const Tensor& y = c.output();
    if (GradMode::enabled())  // create_graph: composed of ops, so it can be differentiated again
      c.accumulate(0, c.grad_out() * y * (1.0 - y));
    else  // the same formula in one loop
      c.accumulate(0, kernels::unary_backward("sigmoid", c.grad_out(), y, kernels::Backward::sigmoid));
  });
}

}  // namespace rwd
