// rewind/kernels/gemm.hpp — matrix products: the GEMM behind matmul and affine, and the one the sweep
// runs straight into adjoints (library-internal).
//
// Row-major throughout. Each product is BLAS gemm with its transpose flags (no transpose is ever
// copied), except tiny ones (m·n·k ≤ 512), where a plain loop costs less than the BLAS call.
//
// Threads: OpenBLAS runs on one thread (core/threads.cpp sets it so), and a product of at least
// 2·kSplitWork multiply-adds is split here across kernels/pool.hpp's threads into blocks of C: bands
// of rows (a multiple of kSplitAlignRows each), cut into columns (multiples of kSplitAlignCols) when
// there are more threads than bands — so a 256-row C still feeds 16 threads — at most one block per
// thread and none under kSplitWork, each block one single-threaded gemm call.
//
// Why not OpenBLAS's own threads: on the products of a recurrent step they gained 1.5× on 2 cores at
// best and were slower than one thread at worst (W_hh·h of lstm_medium, 1024×64×256: 100 µs, or 240
// in another minute, against 151 on one thread and 79–90 split here; bench/gemm_threads.cpp), and
// they wait for work by yielding, in the way of the pool's workers (bench/PROFILE.md). Measured and
// not taken: four blocks a thread, so that a core slowed by something else would take fewer — each
// block packs its share of op(b) again (W_hhᵀ·dG of lstm_medium 113–126 µs on 2 threads against 90–94).
//
// The blocks are fixed by the shape and the thread count, so a product gives the same bits from run
// to run. Across thread counts it may not, as with OpenBLAS's own threads: a block is a smaller
// product, for which OpenBLAS on AVX-512 may choose its small-matrix or "direct" kernels, which add in
// another order (float32 rounding: tests/test_pool.cpp bounds it). Blocks are even, in multiples of
// 16 rows (the AVX-512 kernels' row tile): 128 + 128 rows of W_hhᵀ·dG took 91 µs, 144 + 112 (48-row
// multiples, which would also keep Haswell's 24-row tiles) 96 µs.
#pragma once

#include <algorithm>
#include <cstddef>

#include "../core/tensor.hpp"

namespace rwd::kernels {

/// Products up to this many multiply-adds (m·n·k) run as a plain loop: below it a BLAS call costs more.
inline constexpr std::size_t kTinyProduct = 512;

/// Products of at least 2·kSplitWork multiply-adds split across threads, into blocks of at least
/// kSplitWork (about 5 µs of one core's sgemm at 200 GFLOP/s), rows in multiples of kSplitAlignRows,
/// columns of kSplitAlignCols.
inline constexpr std::size_t kSplitWork = std::size_t{1} << 19;
inline constexpr std::size_t kSplitAlignRows = 16;
inline constexpr std::size_t kSplitAlignCols = 16;
/// The grain of a loop over items of `work` multiply-adds each (a sequence's steps, a packed weight's
/// panels): each chunk at least kSplitWork of them, and at least one item.
inline std::size_t split_grain(std::size_t work) { return std::max<std::size_t>(1, kSplitWork / std::max<std::size_t>(work, 1)); }

/// The shape of op(a)·op(b) (2-D, or 3-D batches); throws ShapeError/DtypeError naming `op`.
Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb);

/// c (m, n) = op(a)·op(b) + beta·c, op(a) (m, k), op(b) (k, n), transposes by flag; beta 0 or 1.
/// For T = float and double.
template <class T>
void gemm(const T* a, const T* b, T* c, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, T beta);

/// c = op(a)·op(b) + beta·c, written into c's buffer (beta 0 or 1; 2-D or batched). Shapes must
/// already be checked (matmul_shape).
void gemm_into(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& c, double beta);

/// A sum of products Σᵢ op(aᵢ)·op(bᵢ) into one (m, n) matrix (2-D; every op(aᵢ) (m, kᵢ), op(bᵢ) (kᵢ, n),
/// one pair of transpose flags), gathered to run as ONE gemm with k = Σ kᵢ: each pair is copied, as
/// it comes, into two panels of `capacity` inner columns — [op(a₀) op(a₁) …] and [op(b₀); op(b₁); …]
/// in the operands' own layouts (side by side a row at a time, or stacked in one copy) — so the
/// caller need not keep the operands. The panels come from the buffer cache and go back with it.
class ProductPanel {
 public:
  ProductPanel(std::size_t m, std::size_t n, std::size_t capacity, bool ta, bool tb, Dtype dtype);
  /// Inner columns still free.
  std::size_t room() const { return m_capacity - m_used; }
  /// Inner columns gathered so far.
  std::size_t used() const { return m_used; }
  /// Gathers op(a)·op(b); a's inner size must fit room(). Shapes must already be checked.
  void add(const Tensor& a, const Tensor& b);
  /// c = Σ op(aᵢ)·op(bᵢ) + beta·c (beta 0 or 1) as one gemm, then starts empty again.
  void run_into(const Tensor& c, double beta);

 private:
  std::size_t m_m, m_n, m_capacity, m_used = 0;
  bool m_ta, m_tb;
  Tensor m_a, m_b;  // the panels, (m, capacity) or (capacity, m); (capacity, n) or (n, capacity)
};

/// The affine of a (T, k, B) sequence's steps side by side (the affine_seq op), one product a step and
/// no permuted copy: y (m, T·B) = W·x_t + bias into columns t·B …; dx (T, k, B) = Wᵀ·dy_t into step t's
/// block; dW (m, k) = Σ_t dy_t·x_tᵀ. Shapes must already be checked. The steps split across the pool
/// (y, dx); dW's steps add up in order.
Tensor affine_seq(const char* op, const Tensor& W, const Tensor& x, const Tensor& bias);
Tensor affine_seq_dx(const Tensor& W, const Tensor& dy, std::size_t steps, std::size_t batch);
Tensor affine_seq_dw(const Tensor& dy, const Tensor& x);

/// y = W·x + bias + base: W (m, k), x (k, n) or (k,) (a one-column matrix), bias (m,) or (m, 1) or
/// undefined, base undefined or of y's shape — or, with base_first, columns [base_first,
/// base_first + n) of a wider (m, N) base. Written once: bias and base first, then the product
/// added onto them by gemm with β = 1. Shapes must already be checked (the affine op).
Tensor affine(const char* op, const Tensor& W, const Tensor& x, const Tensor& bias, const Tensor& base,
              std::size_t base_first = 0);

}  // namespace rwd::kernels
