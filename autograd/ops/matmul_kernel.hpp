// rewind/autograd/ops/matmul_kernel.hpp — the GEMM behind matmul, for the sweep to run products
// straight into adjoints (library-internal).
#pragma once

#include "../../core/tensor.hpp"

namespace rwd::detail {

/// The shape of op(a)·op(b) (2-D, or 3-D batches); throws ShapeError/DtypeError naming `op`.
Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb);

/// c = op(a)·op(b) + beta·c, written into c's buffer (beta 0 or 1). Shapes must already be checked.
void gemm_into(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& c, double beta);

}  // namespace rwd::detail
