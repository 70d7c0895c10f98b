// rewind/autograd/ops/op.hpp — what every primitive's file includes (library-internal).
//
// A primitive's file reads, top to bottom: the math as a comment, the shape check, the forward (one
// call into kernels/, which holds every loop), and the backward (rewind ops on the context, so that a
// create_graph sweep can differentiate it again). See tanh.cpp for the shape of one.
#pragma once

#include "../../core/detail/impl.hpp"
#include "../../kernels/copy.hpp"
#include "../../kernels/elementwise.hpp"
#include "../../kernels/gemm.hpp"
#include "../../kernels/reduce.hpp"
#include "../ops.hpp"
#include "../primitives.hpp"
#include "../tape.hpp"

namespace rwd::detail {

/// Throws ValueError unless every index is in [0, n), naming the op and the offending position.
void check_indices(const char* op, const Indices& indices, std::size_t n, std::size_t axis, const Shape& shape);

/// A scalar of x's dtype (for writing formulas like 1 − y²).
inline Tensor scalar_like(const Tensor& x, double v) { return Tensor::scalar(v, x.dtype()); }

/// dy where keep(x), else 0 — selected, not dy·mask, so an infinite or NaN dy gives 0 where x is not
/// kept (inf·0 would be NaN). Under create_graph through where(), which records (dx stays
/// differentiable in dy); otherwise in one loop. For the ops that pass dy through or not (relu, clamp).
template <class Keep>
Tensor select_grad(const char* op, const Tensor& dy, const Tensor& x, Keep keep) {
  if (GradMode::enabled()) return where(kernels::mask(op, x, keep), dy, scalar_like(dy, 0.0));
  return kernels::zip(op, dy, x, [keep](auto g, auto v) { return keep(v) ? g : decltype(g)(0); });
}

}  // namespace rwd::detail
