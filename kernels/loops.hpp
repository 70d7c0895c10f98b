// rewind/kernels/loops.hpp — the loop plans under every broadcast, strided copy and sum over axes
// (library-internal, like all of kernels/).
//
// A broadcast a ⊕ b is planned once as nested loops over the output, each operand with its own
// stride per loop (0 where it is broadcast). Adjacent dimensions that walk memory the same way in
// every operand are merged first, so the common cases collapse to one or two loops:
//
//   (4H, B) + (4H, B)   → 1 loop of 4H·B, strides (1, 1)
//   (4H, B) + (4H, 1)   → 4H × B, inner strides (1, 0)        — a bias column
//   (4H, B) − ()        → 1 loop, strides (1, 0)              — a scalar
//
// and the innermost loop is written once per stride pattern so the compiler vectorizes it.
// A sum over axes is the same plan read the other way: the output has stride 0 along summed axes.
//
// for_each_run calls its body once per innermost run. A thread pool would split the outer odometer
// (the runs), each thread taking a contiguous range of them: the runs write disjoint outputs, except
// a sum's runs along a summed axis, which a pool would give to one thread each.
#pragma once

#include <cstddef>

#include "../core/shape.hpp"

namespace rwd::kernels {

/// Loops over an output of `ndim` merged dimensions, with one stride per operand per loop.
struct LoopPlan {
  static constexpr std::size_t max_ops = 4;  // the output and up to three operands (where: cond, a, b)
  std::size_t ndim = 0;
  std::size_t dims[Shape::max_dims] = {};
  std::ptrdiff_t strides[max_ops][Shape::max_dims] = {};
  std::size_t numel = 1;
};

/// The plan for writing an output of shape `out` from operands of the given shapes (each
/// broadcastable to `out`, right-aligned as NumPy does), operand k's strides in plan.strides[k].
LoopPlan plan_broadcast(const Shape& out, const Shape* operands, std::size_t count);

/// The same from explicit strides: full[k][i] is operand k's step along output dimension i.
LoopPlan plan_loops(const Shape& out, const std::ptrdiff_t (*full)[Shape::max_dims], std::size_t count);

/// Calls body(offsets_of_each_operand, inner_count, inner_strides) once per innermost run.
template <std::size_t N, class Body>
void for_each_run(const LoopPlan& p, Body&& body) {
  if (p.numel == 0) return;
  std::ptrdiff_t off[N] = {};
  std::ptrdiff_t inner[N];
  for (std::size_t k = 0; k < N; ++k) inner[k] = p.ndim ? p.strides[k][p.ndim - 1] : 0;
  const std::size_t n_inner = p.ndim ? p.dims[p.ndim - 1] : 1;
  if (p.ndim <= 1) {
    body(off, n_inner, inner);
    return;
  }
  std::size_t idx[Shape::max_dims] = {};
  const std::size_t outer_dims = p.ndim - 1;
  for (;;) {
    body(off, n_inner, inner);
    // Odometer over the outer dimensions, last fastest.
    std::size_t d = outer_dims;
    while (d > 0) {
      --d;
      ++idx[d];
      for (std::size_t k = 0; k < N; ++k) off[k] += p.strides[k][d];
      if (idx[d] < p.dims[d]) break;
      for (std::size_t k = 0; k < N; ++k) off[k] -= p.strides[k][d] * static_cast<std::ptrdiff_t>(p.dims[d]);
      idx[d] = 0;
      if (d == 0) return;
    }
  }
}

}  // namespace rwd::kernels
