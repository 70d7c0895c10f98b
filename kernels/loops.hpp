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
// for_each_run calls its body once per innermost run. parallel_runs splits the plan across threads
// (pool.hpp) along one dimension in which the output (operand 0) moves: a broadcast's any, a sum's
// kept ones, never a summed one. Each thread then runs the same loops over its part, so every output
// element is computed by the same formula from the same values in the same order as on one thread.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../core/shape.hpp"
#include "pool.hpp"

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

/// for_each_run over the part of the plan where dimension `d` runs over [lo, hi) only (the offsets
/// the body gets are still from the start of each operand).
template <std::size_t N, class Body>
void for_each_run_part(const LoopPlan& p, std::size_t d, std::size_t lo, std::size_t hi, Body&& body) {
  LoopPlan part = p;
  part.dims[d] = hi - lo;
  part.numel = p.numel / p.dims[d] * (hi - lo);
  std::ptrdiff_t base[N];
  for (std::size_t k = 0; k < N; ++k) base[k] = static_cast<std::ptrdiff_t>(lo) * p.strides[k][d];
  for_each_run<N>(part, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    std::ptrdiff_t at[N];
    for (std::size_t k = 0; k < N; ++k) at[k] = off[k] + base[k];
    body(at, n, s);
  });
}

/// for_each_run, split across threads when the plan has at least 2·grain elements: along the
/// outermost dimension in which the output moves that has at least 16 indices (else the longest such),
/// at multiples of 16 when that is the innermost one (a run split there starts its vector batches
/// where the whole run did).
template <std::size_t N, class Body>
void parallel_runs(const LoopPlan& p, std::size_t grain, Body&& body) {
  if (p.numel < 2 * grain) return for_each_run<N>(p, body);
  std::size_t d = p.ndim;
  for (std::size_t i = 0; i < p.ndim; ++i) {
    if (p.strides[0][i] == 0) continue;  // a summed axis: one thread takes all of it
    if (p.dims[i] >= 16) {
      d = i;
      break;
    }
    if (d == p.ndim || p.dims[i] > p.dims[d]) d = i;
  }
  if (d == p.ndim) return for_each_run<N>(p, body);
  const std::size_t per_index = p.numel / p.dims[d];
  parallel_for(
      p.dims[d], (grain + per_index - 1) / per_index,
      [&](std::size_t lo, std::size_t hi) { for_each_run_part<N>(p, d, lo, hi, body); },
      d + 1 == p.ndim ? 16 : 1);
}

/// Calls fn(o, i, r0, r1) for the part of the flat range [b, e) that lies in each block (o, i) of an
/// (outer, count, inner) index space — elements [r0, r1) of that block — in order: how a loop over
/// blocks of contiguous elements is split at any element.
template <class F>
void for_blocks(std::size_t b, std::size_t e, std::size_t count, std::size_t inner, F&& fn) {
  if (b >= e) return;
  const std::size_t row = b / inner;
  std::size_t o = row / count, i = row % count, r = b % inner;
  while (b < e) {
    const std::size_t r1 = std::min(inner, r + (e - b));
    fn(o, i, r, r1);
    b += r1 - r;
    r = 0;
    if (++i == count) i = 0, ++o;
  }
}

}  // namespace rwd::kernels
