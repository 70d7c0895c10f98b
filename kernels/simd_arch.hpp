// rewind/kernels/simd_arch.hpp — the loops of simd.hpp, written once over xsimd batches of the
// architecture A and included by the two files that compile them: simd.cpp (baseline) and
// simd_avx2.cpp (-mavx2 -mfma). Everything here sits in a namespace named after
// A, so the two compilations share no symbol (no inline function of one can stand in for the other's).
#include <cmath>
#include <cstddef>
#include <limits>

#include <xsimd/xsimd.hpp>

#include "simd.hpp"

namespace rwd::kernels::simd::REWIND_SIMD_NS {

using Arch = REWIND_SIMD_ARCH;

template <class T, class F, class S>
void map1(const T* x, T* y, std::size_t n, F vec, S one) {
  using B = xsimd::batch<T, Arch>;
  constexpr std::size_t w = B::size;
  std::size_t i = 0;
  for (; i + w <= n; i += w) vec(B::load_unaligned(x + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = one(x[i]);
}

template <class T, class F, class S>
void map2(const T* a, const T* b, T* y, std::size_t n, F vec, S one) {
  using B = xsimd::batch<T, Arch>;
  constexpr std::size_t w = B::size;
  std::size_t i = 0;
  for (; i + w <= n; i += w) vec(B::load_unaligned(a + i), B::load_unaligned(b + i)).store_unaligned(y + i);
  for (; i < n; ++i) y[i] = one(a[i], b[i]);
}

template <class T>
void binary_t(Binary op, const T* a, const T* b, T* out, std::size_t n) {
  auto go = [&](auto f) { map2(a, b, out, n, f, f); };
  switch (op) {
    case Binary::add: return go([](auto x, auto y) { return x + y; });
    case Binary::sub: return go([](auto x, auto y) { return x - y; });
    case Binary::mul: return go([](auto x, auto y) { return x * y; });
    case Binary::div: return go([](auto x, auto y) { return x / y; });
  }
}

// eˣ wherever it is finite or subnormal. xsimd's exp gives inf above 88.38 in float32 and 709.44 in
// float64, short of ln(max) (88.72, 709.78), and 0 below −88.38 and −708.40, above ln(min subnormal)
// (−103.3, −744.4): in those bands eˣ = (e^(x/2))², x/2 exact and e^(x/2) within xsimd's accuracy
// (so about twice its error there), overflowing to inf, or rounding to a subnormal or 0, as eˣ does.
// Lanes with |x| > 87 (float32) or 708 (float64) take it; a batch with none (all but the rarest)
// pays one compare.
template <class B>
B exp_full(B v) {
  using T = typename B::value_type;
  const auto wide = xsimd::abs(v) > B(T(sizeof(T) == 4 ? 87 : 708));
  if (xsimd::none(wide)) return xsimd::exp(v);
  const B r = xsimd::exp(xsimd::select(wide, v * B(T(0.5)), v));
  return xsimd::select(wide, r * r, r);
}

template <class T>
void unary_t(Unary op, const T* x, T* y, std::size_t n) {
  using B = xsimd::batch<T, Arch>;
  // The tail uses the same batch code on one padded batch, so every element gets the same formula.
  auto go = [&](auto f) {
    map1(x, y, n, f, [&](T v) {
      alignas(64) T in[B::size] = {}, out[B::size];
      in[0] = v;
      f(B::load_aligned(in)).store_aligned(out);
      return out[0];
    });
  };
  switch (op) {
    case Unary::tanh: return go([](B v) { return xsimd::tanh(v); });
    case Unary::sigmoid: return go([](B v) { return B(T(1)) / (B(T(1)) + exp_full(-v)); });
    case Unary::exp: return go([](B v) { return exp_full(v); });
  }
}

template <class T>
void backward_t(Backward op, const T* dy, const T* y, T* dx, std::size_t n) {
  switch (op) {
    case Backward::tanh:
      return map2(dy, y, dx, n, [](auto d, auto v) { return d * (decltype(v)(T(1)) - v * v); },
                  [](T d, T v) { return d * (T(1) - v * v); });
    case Backward::sigmoid:
      return map2(dy, y, dx, n, [](auto d, auto v) { return d * v * (decltype(v)(T(1)) - v); },
                  [](T d, T v) { return d * v * (T(1) - v); });
  }
}

// ln x and xᵖ as xtensor's assignment ran them: whole batches by xsimd, the rest by the scalar std::
// function (simd.hpp says why these keep xtensor's bits) — except the lanes where xsimd's batch
// formulas are wrong, which take the std:: function too, so that no value depends on its lane: ln of a
// subnormal x (log(1e-310) gave −746.5, not −713.8); xᵖ where x is 0, subnormal, infinite or NaN, or
// p is 0, infinite or NaN (0⁰ and 0⁻¹ gave 0, inf⁰ and NaN⁰ NaN, 1^inf NaN, 1e-310¹ 0). A batch with
// no such lane (all but the rarest) pays a compare or two.
template <class B, class M, class F>
B std_lanes(B r, const M& special, F exact) {
  if (xsimd::none(special)) return r;
  using T = typename B::value_type;
  alignas(64) T e[B::size];
  for (std::size_t i = 0; i < B::size; ++i) e[i] = exact(i);
  return xsimd::select(special, B::load_aligned(e), r);
}

template <class T>
void log_t(const T* x, T* y, std::size_t n) {
  using B = xsimd::batch<T, Arch>;
  map1(x, y, n,
       [](B v) {
         const auto subnormal = v > B(T(0)) && v < B(std::numeric_limits<T>::min());
         return std_lanes(xsimd::log(v), subnormal, [&](std::size_t i) { return std::log(v.get(i)); });
       },
       [](T v) { return std::log(v); });
}

// Where pow_t's batch formula is wrong (above): x not a normal number, or p 0 or not finite.
template <class B>
auto pow_special(B x, B p) {
  using T = typename B::value_type;
  return !(xsimd::abs(x) >= B(std::numeric_limits<T>::min()) && xsimd::abs(x) <= B(std::numeric_limits<T>::max())) ||
         !(xsimd::abs(p) <= B(std::numeric_limits<T>::max())) || p == B(T(0));
}

template <class T>
void pow_t(const T* x, T p, T* y, std::size_t n) {
  using B = xsimd::batch<T, Arch>;
  const B pb(p);
  map1(x, y, n,
       [&](B v) {
         return std_lanes(xsimd::pow(v, pb), pow_special(v, pb), [&](std::size_t i) { return std::pow(v.get(i), p); });
       },
       [p](T v) { return std::pow(v, p); });
}

template <class T>
void pow_t(const T* x, const T* p, T* y, std::size_t n) {
  using B = xsimd::batch<T, Arch>;
  map2(x, p, y, n,
       [](B v, B q) {
         return std_lanes(xsimd::pow(v, q), pow_special(v, q), [&](std::size_t i) { return std::pow(v.get(i), q.get(i)); });
       },
       [](T v, T q) { return std::pow(v, q); });
}

}  // namespace rwd::kernels::simd::REWIND_SIMD_NS
