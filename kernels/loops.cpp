// The loop planner of loops.hpp.
#include "loops.hpp"

namespace rwd::kernels {

LoopPlan plan_broadcast(const Shape& out, const Shape* operands, std::size_t count) {
  const std::size_t n = out.ndim();
  std::ptrdiff_t full[LoopPlan::max_ops][Shape::max_dims] = {};
  for (std::size_t k = 0; k < count; ++k) {
    const Shape& s = operands[k];
    const std::size_t lead = n - s.ndim();
    std::ptrdiff_t stride = 1;
    for (std::size_t j = s.ndim(); j-- > 0;) {
      full[k][lead + j] = s[j] == 1 ? 0 : stride;
      stride *= static_cast<std::ptrdiff_t>(s[j]);
    }
  }
  return plan_loops(out, full, count);
}

LoopPlan plan_loops(const Shape& out, const std::ptrdiff_t (*full)[Shape::max_dims], std::size_t count) {
  LoopPlan p;
  const std::size_t n = out.ndim();
  p.numel = out.numel();
  // Drop size-1 dimensions; merge a dimension into the one before it when every operand steps over
  // the inner one exactly as far as one step of the outer one.
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i] == 1) continue;
    bool merge = p.ndim > 0;
    for (std::size_t k = 0; merge && k < count; ++k)
      merge = p.strides[k][p.ndim - 1] == full[k][i] * static_cast<std::ptrdiff_t>(out[i]);
    if (merge) {
      p.dims[p.ndim - 1] *= out[i];
      for (std::size_t k = 0; k < count; ++k) p.strides[k][p.ndim - 1] = full[k][i];
    } else {
      p.dims[p.ndim] = out[i];
      for (std::size_t k = 0; k < count; ++k) p.strides[k][p.ndim] = full[k][i];
      ++p.ndim;
    }
  }
  return p;
}

}  // namespace rwd::kernels
