// rewind/kernels/adam_arch.hpp — adam.hpp's loop over xsimd batches of the architecture
// REWIND_ADAM_ARCH, included by the two files that compile it: adam.cpp (baseline) and
// adam_avx2.cpp (-mavx2, no FMA: a fused multiply-add would change the last bit). Everything here sits
// in a namespace named after the architecture, so the two compilations share no symbol.
#include <cmath>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "adam.hpp"

namespace rwd::kernels::adam_simd::REWIND_ADAM_NS {

using Arch = REWIND_ADAM_ARCH;

template <class T, bool Decoupled, bool L2, bool Ams>
void run(const AdamCoefficients<T>& c, T* p, const T* g, T* m, T* v, T* vmax, std::size_t n) {
  using B = xsimd::batch<T, Arch>;
  constexpr std::size_t w = B::size;
  const B b1(c.b1), b2(c.b2), omb1(c.one_minus_b1), omb2(c.one_minus_b2), decay(c.decay), step(c.step_size),
      bc2(c.bc2_sqrt), eps(c.eps);
  // One batch: the scalar formula's operations, in its order.
  auto one = [&](T* pp, const T* gp, T* mp, T* vp, T* vmp) {
    B P = B::load_unaligned(pp), G = B::load_unaligned(gp);
    if constexpr (Decoupled) P = P * decay;             // p ← p(1 − lr·λ)
    if constexpr (L2) G = G + decay * P;                 // g ← g + λp
    const B M = b1 * B::load_unaligned(mp) + omb1 * G;   // m ← β₁m + (1−β₁)g
    const B V = b2 * B::load_unaligned(vp) + omb2 * G * G;  // v ← β₂v + (1−β₂)g²
    M.store_unaligned(mp);
    V.store_unaligned(vp);
    B second = V;
    if constexpr (Ams) {  // v̂ ← max(v̂, v) as std::max(v̂, v) picks (v̂ unless v̂ < v)
      const B old = B::load_unaligned(vmp);
      second = xsimd::select(old < V, V, old);
      second.store_unaligned(vmp);
    }
    const B denom = xsimd::sqrt(second) / bc2 + eps;  // √v/√(1−β₂ᵗ) + ε
    (P - step * (M / denom)).store_unaligned(pp);     // p ← p − lr/(1−β₁ᵗ) · m/denom
  };
  std::size_t i = 0;
  for (; i + w <= n; i += w) one(p + i, g + i, m + i, v + i, Ams ? vmax + i : nullptr);
  // The tail, one element at a time: the same operations in the same order (neither compilation
  // fuses a multiply into an add), so the same bits as in a batch.
  for (; i < n; ++i) {
    T P = p[i], G = g[i];
    if constexpr (Decoupled) P = P * c.decay;
    if constexpr (L2) G = G + c.decay * P;
    const T M = c.b1 * m[i] + c.one_minus_b1 * G;
    const T V = c.b2 * v[i] + c.one_minus_b2 * G * G;
    m[i] = M, v[i] = V;
    T second = V;
    if constexpr (Ams) second = vmax[i] = vmax[i] < V ? V : vmax[i];
    const T denom = std::sqrt(second) / c.bc2_sqrt + c.eps;
    p[i] = P - c.step_size * (M / denom);
  }
}

template <class T>
void adam_t(const AdamCoefficients<T>& c, T* p, const T* g, T* m, T* v, T* vmax, std::size_t n) {
  const bool ams = vmax != nullptr;
  if (c.decoupled)
    return ams ? run<T, true, false, true>(c, p, g, m, v, vmax, n) : run<T, true, false, false>(c, p, g, m, v, vmax, n);
  if (c.l2)
    return ams ? run<T, false, true, true>(c, p, g, m, v, vmax, n) : run<T, false, true, false>(c, p, g, m, v, vmax, n);
  return ams ? run<T, false, false, true>(c, p, g, m, v, vmax, n) : run<T, false, false, false>(c, p, g, m, v, vmax, n);
}

}  // namespace rwd::kernels::adam_simd::REWIND_ADAM_NS
