// The tensor-level log, pow and where of elementwise.hpp.
#include "elementwise.hpp"

#include <cmath>
#include <limits>

namespace rwd::kernels {

namespace {

// xsimd's batch log and pow (simd::log, simd::pow: whole batches; the last n mod width elements take
// std::) are wrong at special values: log and pow misread subnormal x (log(1e-310) = −746.5, not
// −713.8; 1e-310¹ = 0), and pow gives 0ᵖ = 0 for p ≤ 0 (0⁰ = 0, 0⁻¹ = 0), ±inf⁰ and NaN⁰ = NaN,
// 1^±inf = NaN. Those lanes are computed again by std:: — so a value no longer depends on its lane —
// in a pass that leaves every other element's bits as they were. (The home of this is simd_arch.hpp's
// log_t / pow_t, which others own; every caller comes through here.)
template <class T>
bool pow_special(T x, T p) {
  return !std::isnormal(x) || !std::isfinite(p) || p == T(0);
}

// out[i] = exact(i) where special(i), for i in [0, n), split as the other cheap loops.
template <class Special, class Exact>
void redo(std::size_t n, Special special, Exact exact) {
  parallel_for(n, grain_cheap, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i)
      if (special(i)) [[unlikely]] exact(i);
  });
}

}  // namespace

Tensor log(const char* op, const Tensor& x) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    simd::log(in, out, n);
    redo(n, [&](std::size_t i) { return in[i] > T(0) && in[i] < std::numeric_limits<T>::min(); },  // subnormal
         [&](std::size_t i) { out[i] = std::log(in[i]); });
  });
}

Tensor pow(const char* op, const Tensor& x, double p) {
  const std::size_t n = x.numel();
  return produce(op, x, x.shape(), false, [&](const auto* in, auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    const T q = static_cast<T>(p);
    simd::pow(in, q, out, n);
    redo(n, [&](std::size_t i) { return pow_special(in[i], q); }, [&](std::size_t i) { out[i] = std::pow(in[i], q); });
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
      if (s[1] == 1 && s[2] == 1) {
        const auto *a = px + off[1], *q = pp + off[2];
        auto* o = out + off[0];
        simd::pow(a, q, o, n);
        for (std::size_t i = 0; i < n; ++i)  // the special lanes again (see pow_special)
          if (pow_special(a[i], q[i])) [[unlikely]] o[i] = std::pow(a[i], q[i]);
        return;
      }
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
