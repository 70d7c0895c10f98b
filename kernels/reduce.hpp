// rewind/kernels/reduce.hpp — sums and maxima over axes (library-internal).
//
// A sum is loops.hpp's plan read the other way: planned over the input, the output has stride 0
// along the summed axes. A run that sums into one element keeps eight partial sums (so the compiler
// vectorizes it); their order is fixed, so a sum's bits do not depend on anything but its shape. Large
// sums split across threads (loops.hpp's parallel_runs) along a kept axis, never a summed one: each
// output element is summed by one thread, in the order one thread would sum it. A sum over every axis
// (a 0-d result) has no kept axis and stays on one thread.
#pragma once

#include <cstddef>

#include "../core/detail/impl.hpp"
#include "loops.hpp"

namespace rwd::kernels {

/// out (shape `so`, every summed axis of size 1, same ndim as `sx`) += Σ of x over the axes where so
/// has 1 and sx does not. For a plain sum `out` holds zeros on entry.
template <class T>
void sum_into(const T* x, const Shape& sx, T* out, const Shape& so) {
  const Shape ops[2] = {so, sx};
  // Plan over x's shape: x walks contiguously, the output stays put along summed axes.
  const LoopPlan p = plan_broadcast(sx, ops, 2);
  parallel_runs<2>(p, grain_cheap, [&](const std::ptrdiff_t* off, std::size_t n, const std::ptrdiff_t* s) {
    T* o = out + off[0];
    const T* v = x + off[1];
    if (s[0] == 0 && s[1] == 1) {  // a run that sums into one output element
      T acc[8] = {};
      std::size_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (std::size_t k = 0; k < 8; ++k) acc[k] += v[i + k];
      T total = (acc[0] + acc[1]) + (acc[2] + acc[3]) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < n; ++i) total += v[i];
      *o += total;
    } else if (s[0] == 1 && s[1] == 1) {
      for (std::size_t i = 0; i < n; ++i) o[i] += v[i];
    } else {
      for (std::size_t i = 0; i < n; ++i) o[i * s[0]] += v[i * s[1]];
    }
  });
}

/// Σ of x over the axes where `kept` (x's ndim) has 1 and x does not, as a new tensor of shape
/// `out_shape` (kept, or kept without those axes: the same elements).
Tensor sum(const char* op, const Tensor& x, const Shape& kept, const Shape& out_shape);

/// Max of x along `axis` as a new tensor of shape `out_shape` (x's shape without that axis, or with
/// it as 1), and in `onehot` (x's shape) a 1 at the first maximal element of each lane, 0 elsewhere.
/// The axis must not be empty.
Tensor max(const char* op, const Tensor& x, std::size_t axis, const Shape& out_shape, Tensor& onehot);

}  // namespace rwd::kernels
