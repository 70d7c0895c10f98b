// rewind/kernels/adam.hpp — Adam's element-wise update in vectors (library-internal).
//
// The optimizer's whole update of one parameter is one pass over five arrays (the parameter, its
// gradient, the two moments and AMSGrad's maximum), with a square root and two divisions an element:
// scalar, it took 2–3% of an LSTM's training step on one core. Here it runs in xsimd batches, compiled
// for baseline x86-64 (adam.cpp) and for AVX2 (adam_avx2.cpp, without FMA), chosen at run time as the
// loops of simd.hpp are. No product is fused into an add in either compilation, and square root and
// division round correctly in every width and in the scalar loop that takes the last n mod width
// elements: every element gets bit for bit what the scalar formula gives it, at any width and thread
// count.
#pragma once

#include <cstddef>

namespace rwd::kernels {

/// The coefficients of one Adam update, in the parameter's precision.
template <class T>
struct AdamCoefficients {
  T b1, b2;                        ///< β₁, β₂
  T one_minus_b1, one_minus_b2;    ///< 1 − β₁, 1 − β₂ (rounded from double, as the scalar formula had them)
  T decay;                         ///< 1 − lr·λ (decoupled) or λ (L2); unused when λ = 0
  T step_size;                     ///< lr / (1 − β₁ᵗ)
  T bc2_sqrt;                      ///< √(1 − β₂ᵗ)
  T eps;                           ///< ε
  bool l2 = false;                 ///< g ← g + λp (Adam's weight_decay)
  bool decoupled = false;          ///< p ← p(1 − lr·λ) first (AdamW)
};

/// For i in [0, n): (AdamW: p ← p(1 − lr·λ)), (L2: g ← g + λp), m ← β₁m + (1−β₁)g,
/// v ← β₂v + (1−β₂)g², (AMSGrad, vmax non-null: v̂ ← max(v̂, v), read in place of v),
/// p ← p − step_size · m / (√v / bc2_sqrt + ε). Split across threads when long (pool.hpp).
template <class T>
void adam_update(const AdamCoefficients<T>& c, T* p, const T* g, T* m, T* v, T* vmax, std::size_t n);

}  // namespace rwd::kernels
