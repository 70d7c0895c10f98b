// rewind/kernels/gemm.hpp — matrix products: the GEMM behind matmul and affine, and the one the sweep
// runs straight into adjoints (library-internal).
//
// Row-major throughout. Each product is one BLAS gemm with its transpose flags (no transpose is ever
// copied), except tiny ones (m·n·k ≤ 512), where a plain loop costs less than the BLAS call. A thread
// pool would split a batch across its matrices, or a matrix's rows [i0, i1) (the m of one gemm call).
#pragma once

#include <cstddef>

#include "../core/tensor.hpp"

namespace rwd::kernels {

/// The shape of op(a)·op(b) (2-D, or 3-D batches); throws ShapeError/DtypeError naming `op`.
Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb);

/// c (m, n) = op(a)·op(b) + beta·c, op(a) (m, k), op(b) (k, n), transposes by flag; beta 0 or 1.
/// For T = float and double.
template <class T>
void gemm(const T* a, const T* b, T* c, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, T beta);

/// c = op(a)·op(b) + beta·c, written into c's buffer (beta 0 or 1; 2-D or batched). Shapes must
/// already be checked (matmul_shape).
void gemm_into(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& c, double beta);

/// y = W·x + bias + base: W (m, k), x (k, n) or (k,) (a one-column matrix), bias (m,) or (m, 1) or
/// undefined, base of y's shape or undefined. Written once: bias and base first, then the product
/// added onto them by gemm with β = 1. Shapes must already be checked (the affine op).
Tensor affine(const char* op, const Tensor& W, const Tensor& x, const Tensor& bias, const Tensor& base);

}  // namespace rwd::kernels
