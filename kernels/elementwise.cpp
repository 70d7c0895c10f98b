// The tensor-level log, pow and where of elementwise.hpp.
#include "elementwise.hpp"

#include <cmath>

namespace rwd::kernels {

Tensor log(const char* op, const Tensor& x) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) { simd::log(in, out, n); });
}

Tensor pow(const char* op, const Tensor& x, double p) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    simd::pow(in, static_cast<T>(p), out, n);
  });
}

Tensor pow(const char* op, const Tensor& x, const Tensor& p) {
  return produce_broadcast(op, x, p, [&](const Shape& so, const auto* px, const Shape& sx, const auto* pp,
                                         const Shape& sp, auto* out) {
    // A run where both operands are contiguous takes simd::pow, others std::pow: the bits xtensor's
    // strided assignment gave (it vectorizes the inner block that every operand walks contiguously).
    const Shape ops[3] = {so, sx, sp};
    const LoopPlan plan = plan_broadcast(so, ops, 3);
    parallel_runs<3>(plan, grain_math, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
      if (s[1] == 1 && s[2] == 1) return simd::pow(px + off[1], pp + off[2], out + off[0], n);
      for (std::size_t i = 0; i < n; ++i) out[off[0] + i] = std::pow(px[off[1] + i * s[1]], pp[off[2] + i * s[2]]);
    });
  });
}

Tensor where(const char* op, const Tensor& cond, const Tensor& a, const Tensor& b) {
  detail::check_same_dtype(op, a, b);
  detail::check_same_dtype(op, cond, a);
  const Shape sc = cond.shape(), sa = a.shape(), sb = b.shape();
  const Shape so = broadcast_shapes(op, broadcast_shapes(op, sc, sa), sb);
  Tensor z = detail::empty_tensor(so, a.dtype());
  detail::visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    select<T>(so, detail::data<T>(cond, op), sc, detail::data<T>(a, op), sa,
              detail::data<T>(b, op), sb, detail::data_mut<T>(z, op));
  });
  return z;
}

}  // namespace rwd::kernels
