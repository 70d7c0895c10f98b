// The products of gemm.hpp: cxxblas (xtensor-blas's thin layer) dispatches to cblas_sgemm/dgemm.
#include "gemm.hpp"

#include <algorithm>
#include <string>
#include <type_traits>

#include <xtensor-blas/xblas.hpp>

#include "../core/detail/blas.hpp"
#include "../core/detail/impl.hpp"
#include "../core/threads.hpp"
#include "packed.hpp"
#include "pool.hpp"

namespace rwd::kernels {

namespace {
std::string flagged(const char* name, bool t) { return t ? std::string(name) + "ᵀ" : std::string(name); }
}  // namespace

Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // Read in place; the messages build the Shapes.
  const detail::Dims sa = detail::dims(a), sb = detail::dims(b);
  if (!((sa.ndim() == 2 && sb.ndim() == 2) || (sa.ndim() == 3 && sb.ndim() == 3)))
    throw_shape_error(op, {{"lhs", a.shape()}, {"rhs", b.shape()}},
                      "operands must both be 2-D matrices or both 3-D batches of matrices");
  const std::size_t r = sa.ndim() - 2;  // first matrix axis
  if (r == 1 && sa[0] != sb[0])
    throw_shape_error(op, {{"lhs", a.shape()}, {"rhs", b.shape()}},
                      "lhs.shape[0] (" + std::to_string(sa[0]) + ") must equal rhs.shape[0] (" + std::to_string(sb[0]) +
                          ") (the batch size)");
  const std::size_t m = ta ? sa[r + 1] : sa[r], ka = ta ? sa[r] : sa[r + 1];
  const std::size_t kb = tb ? sb[r + 1] : sb[r], n = tb ? sb[r] : sb[r + 1];
  if (ka != kb) {
    const std::size_t ia = ta ? r : r + 1, ib = tb ? r + 1 : r;
    const std::string lhs = flagged("lhs", ta), rhs = flagged("rhs", tb);
    throw_shape_error(op, {{lhs.c_str(), a.shape()}, {rhs.c_str(), b.shape()}},
                      "lhs.shape[" + std::to_string(ia) + "] (" + std::to_string(ka) + ") must equal rhs.shape[" +
                          std::to_string(ib) + "] (" + std::to_string(kb) + ")");
  }
  detail::check_same_dtype(op, a, b);
  return r == 1 ? Shape{sa[0], m, n} : Shape{m, n};
}

// One BLAS gemm call, on the calling thread (OpenBLAS on one thread).
template <class T>
void blas_gemm(const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc, std::size_t m,
               std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  using I = xt::blas_index_t;
  using cxxblas::Transpose;
  cxxblas::gemm<I>(cxxblas::StorageOrder::RowMajor, ta ? Transpose::Trans : Transpose::NoTrans,
                   tb ? Transpose::Trans : Transpose::NoTrans, static_cast<I>(m), static_cast<I>(n),
                   static_cast<I>(k), T(1), a, static_cast<I>(std::max<std::size_t>(lda, 1)), b,
                   static_cast<I>(std::max<std::size_t>(ldb, 1)), beta, c, static_cast<I>(std::max<std::size_t>(ldc, 1)));
}

// A product past the tiny cut: one BLAS call, or blocks of it on the pool; true when split.
template <class T>
bool run_large_gemm(const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc, std::size_t m,
                    std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  // OpenBLAS runs on one thread (core/threads.cpp); a large product is split here, across the pool,
  // into blocks of C — bands of rows, each cut into columns when there are more threads than bands
  // (a short C: columns only) — each block one single-threaded BLAS call (gemm.hpp).
  // (Inside a pool task — a bidirectional layer's direction beside the other — the blocks would run
  // in turn on this thread, each packing op(b) again: one call instead.)
  const std::size_t work = m * n * k, threads = static_cast<std::size_t>(get_num_threads());
  if (threads > 1 && work >= 2 * kSplitWork && !inside_pool()) {
    const std::size_t most = std::min(threads, work / kSplitWork);
    const std::size_t row_parts = std::max<std::size_t>(1, std::min(most, m / kSplitAlignRows));
    const std::size_t col_parts = std::max<std::size_t>(1, std::min(most / row_parts, n / kSplitAlignCols));
    if (row_parts * col_parts >= 2) {
      // Bands of `rb` rows and blocks of `cb` columns (multiples of the alignments; the last ones
      // shorter), one pool chunk each.
      auto size = [](std::size_t len, std::size_t parts, std::size_t align) {
        return ((len + parts - 1) / parts + align - 1) / align * align;
      };
      const std::size_t rb = size(m, row_parts, kSplitAlignRows), cb = size(n, col_parts, kSplitAlignCols);
      const std::size_t bands = (m + rb - 1) / rb, cols = (n + cb - 1) / cb;
      parallel_for(bands * cols, 1, [&](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
          const std::size_t r0 = i / cols * rb, r1 = std::min(m, r0 + rb);
          const std::size_t c0 = i % cols * cb, c1 = std::min(n, c0 + cb);
          // Rows [r0, r1) of op(a), columns [c0, c1) of op(b), into that block of C.
          blas_gemm<T>(ta ? a + r0 : a + r0 * lda, lda, tb ? b + c0 * ldb : b + c0, ldb, c + r0 * ldc + c0, ldc, r1 - r0,
                       c1 - c0, k, ta, tb, beta);
        }
      });
      return true;
    }
  }
  blas_gemm<T>(a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
  return false;
}

// run_large_gemm, out of line, so the tiny products' loop in gemm_ld stays as lean as it was (tiny's
// training step: −200 instructions); timed when the thread profile counts (core/threads.hpp).
template <class T>
[[gnu::noinline]] void large_gemm(const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc,
                                  std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  // The first BLAS call says so once if OpenBLAS runs generic kernels on a CPU with AVX2/AVX-512
  // (core/blas.hpp); afterwards this is one initialized-guard load.
  static const bool blas_checked = (detail::warn_if_generic_blas(), true);
  (void)blas_checked;
  if (!profiling()) {
    run_large_gemm<T>(a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
    return;
  }
  const ProductScope scope;
  const std::uint64_t t0 = now_ns();
  const bool split = run_large_gemm<T>(a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
  count_product(now_ns() - t0, split);
}

// gemm with explicit row strides (leading dimensions) of a, b and c.
template <class T>
void gemm_ld(const T* a, std::size_t lda, const T* b, std::size_t ldb, T* c, std::size_t ldc, std::size_t m,
             std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  if (m * n * k <= kTinyProduct) {  // tiny products: a plain loop costs less than the BLAS call
    // Element strides of op(a) (i, p) and op(b) (p, j), so one loop serves all four transposes.
    const std::size_t ai = ta ? 1 : lda, ap = ta ? lda : 1, bp = tb ? 1 : ldb, bj = tb ? ldb : 1;
    if (k == 1) {  // an outer product (a weight's gradient from one column): acc = 0 + a_i·b_j, as below
      for (std::size_t i = 0; i < m; ++i) {
        const T x = a[i * ai];
        T* ci = c + i * ldc;
        if (beta == T(0))
          for (std::size_t j = 0; j < n; ++j) ci[j] = T(0) + x * b[j * bj];
        else
          for (std::size_t j = 0; j < n; ++j) ci[j] = (T(0) + x * b[j * bj]) + beta * ci[j];
      }
      return;
    }
    if (n == 1 && bp == 1) {  // a matrix times a column (a cell's W·h, Wᵀ·dG)
      if (ap == 1) {  // rows of op(a) contiguous: one dot product each
        for (std::size_t i = 0; i < m; ++i) {
          const T* x = a + i * ai;
          T acc = 0;
          for (std::size_t p = 0; p < k; ++p) acc += x[p] * b[p];
          c[i * ldc] = beta == T(0) ? acc : acc + beta * c[i * ldc];
        }
        return;
      }
      if (ai == 1 && m <= kTinyProduct) {  // op(a) = aᵀ: its columns contiguous, so the sums run side
        // by side down them — each still 0 + a₀b₀ + a₁b₁ + … in that order, the bits of the loop below.
        T acc[kTinyProduct];
        for (std::size_t i = 0; i < m; ++i) acc[i] = 0;
        for (std::size_t p = 0; p < k; ++p) {
          const T* x = a + p * ap;
          const T y = b[p];
          for (std::size_t i = 0; i < m; ++i) acc[i] += x[i] * y;
        }
        for (std::size_t i = 0; i < m; ++i) c[i * ldc] = beta == T(0) ? acc[i] : acc[i] + beta * c[i * ldc];
        return;
      }
    }
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const T* x = a + i * ai;
        const T* y = b + j * bj;
        T acc = 0;
        for (std::size_t p = 0; p < k; ++p) acc += x[p * ap] * y[p * bp];
        c[i * ldc + j] = beta == T(0) ? acc : acc + beta * c[i * ldc + j];
      }
    return;
  }
  large_gemm<T>(a, lda, b, ldb, c, ldc, m, n, k, ta, tb, beta);
}

template <class T>
void gemm(const T* a, const T* b, T* c, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  gemm_ld<T>(a, ta ? m : k, b, tb ? k : n, c, n, m, n, k, ta, tb, beta);
}

template void gemm<float>(const float*, const float*, float*, std::size_t, std::size_t, std::size_t, bool, bool, float);
template void gemm<double>(const double*, const double*, double*, std::size_t, std::size_t, std::size_t, bool, bool,
                           double);

void gemm_into(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& c, double beta) {
  const detail::Dims sa = detail::dims(a), so = detail::dims(c);
  const std::size_t r = sa.ndim() - 2;
  const std::size_t batch = r == 1 ? sa[0] : 1;
  const std::size_t m = so[r], n = so[r + 1], k = ta ? sa[r] : sa[r + 1];
  detail::visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = detail::data<T>(a, "matmul");
    const T* y = detail::data<T>(b, "matmul");
    T* out = detail::data_mut<T>(c, "matmul");
    if (k == 0) {  // an empty sum: zeros (BLAS may return before touching C)
      if (beta == 0.0) std::fill(out, out + batch * m * n, T(0));
      return;
    }
    // A leaf left operand used again and again (a recurrent weight): packed once (packed.hpp).
    if constexpr (std::is_same_v<T, float>)
      if (batch == 1 && !tb && packed_product(a, ta, y, n, out, n, m, n, k, beta != 0.0))
        return;
    for (std::size_t i = 0; i < batch; ++i)
      gemm<T>(x + i * m * k, y + i * k * n, out + i * m * n, m, n, k, ta, tb, static_cast<T>(beta));
  });
}

}  // namespace rwd::kernels

namespace rwd::kernels {

ProductPanel::ProductPanel(std::size_t m, std::size_t n, std::size_t capacity, bool ta, bool tb, Dtype dtype)
    : m_m(m), m_n(n), m_capacity(capacity), m_ta(ta), m_tb(tb) {
  m_a = detail::empty_tensor(ta ? Shape{capacity, m} : Shape{m, capacity}, dtype);
  m_b = detail::empty_tensor(tb ? Shape{n, capacity} : Shape{capacity, n}, dtype);
}

void ProductPanel::add(const Tensor& a, const Tensor& b) {
  const std::size_t k = m_ta ? a.shape()[0] : a.shape()[1];
  detail::visit_dtype(m_a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // x (rows, cols) into a panel: side by side, its rows at columns [used, used + cols) of rows
    // `capacity` long; or stacked, as rows [used, used + rows) in one copy.
    // (Rows split across the pool when large: a step's dG is 65,536 elements in lstm_medium.)
    auto place = [&](const Tensor& x, const Tensor& panel, bool side_by_side) {
      const T* src = detail::data<T>(x, "ProductPanel");
      T* dst = detail::data_mut<T>(panel, "ProductPanel");
      const std::size_t rows = x.shape()[0], cols = x.shape()[1];
      T* to = side_by_side ? dst + m_used : dst + m_used * cols;
      const std::size_t ld = side_by_side ? m_capacity : cols;
      parallel_for(rows, std::max<std::size_t>(1, grain_cheap / std::max<std::size_t>(cols, 1)),
                   [&](std::size_t r0, std::size_t r1) {
                     for (std::size_t r = r0; r < r1; ++r) std::copy(src + r * cols, src + (r + 1) * cols, to + r * ld);
                   });
    };
    place(a, m_a, !m_ta);
    place(b, m_b, m_tb);
  });
  m_used += k;
}

void ProductPanel::run_into(const Tensor& c, double beta) {
  detail::visit_dtype(m_a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::data_mut<T>(c, "ProductPanel");
    if (m_used == 0) {
      if (beta == 0.0) std::fill(out, out + m_m * m_n, T(0));
      return;
    }
    // A side-by-side panel's rows are `capacity` long whatever part of them is filled.
    gemm_ld<T>(detail::data<T>(m_a, "ProductPanel"), m_ta ? m_m : m_capacity, detail::data<T>(m_b, "ProductPanel"),
               m_tb ? m_capacity : m_n, out, m_n, m_m, m_n, m_used, m_ta, m_tb, static_cast<T>(beta));
  });
  m_used = 0;
}

namespace {

// Rows [r0, r1) of affine's output, n wide, before its product is added: base + bias, the bias alone,
// or the base alone (row i of the base at pbase + i·base_ld).
template <class T>
[[gnu::always_inline]] inline void base_rows(T* out, const T* pbase, std::size_t base_ld, const T* pb, std::size_t n, std::size_t r0, std::size_t r1) {
  if (pb && pbase) {
    for (std::size_t i = r0; i < r1; ++i)
      for (std::size_t j = 0; j < n; ++j) out[i * n + j] = pbase[i * base_ld + j] + pb[i];
  } else if (pb) {
    for (std::size_t i = r0; i < r1; ++i) std::fill(out + i * n, out + (i + 1) * n, pb[i]);
  } else if (base_ld == n) {
    std::copy(pbase + r0 * n, pbase + r1 * n, out + r0 * n);
  } else {
    for (std::size_t i = r0; i < r1; ++i) std::copy(pbase + i * base_ld, pbase + i * base_ld + n, out + i * n);
  }
}

// An (m, n) output's base and bias before its product is added: by base_rows, split across the pool
// by rows when large (a recurrent step's 1024×64 gates: 65,536 elements), as the product's blocks are;
// small ones (every step of a batch-1 model) straight in the loop.
template <class T>
void prefill(T* out, const T* pbase, std::size_t base_ld, const T* pb, std::size_t m, std::size_t n) {
  if (m * n < 2 * grain_cheap) return base_rows(out, pbase, base_ld, pb, n, 0, m);
  parallel_for(m, std::max<std::size_t>(1, grain_cheap / std::max<std::size_t>(n, 1)),
               [&](std::size_t r0, std::size_t r1) { base_rows(out, pbase, base_ld, pb, n, r0, r1); });
}

}  // namespace

Tensor affine(const char* op, const Tensor& W, const Tensor& x, const Tensor& bias, const Tensor& base,
              std::size_t base_first) {
  const detail::Dims sx = detail::dims(x), sw = detail::dims(W);
  const std::size_t m = sw[0], k = sw[1], n = sx.ndim() == 1 ? 1 : sx[1];
  // Row i of the base starts at pbase + i·base_ld (a wider base: its columns [base_first, …) only).
  const std::size_t base_ld = base.defined() && detail::dims(base).ndim() == 2 ? detail::dims(base)[1] : n;
  Tensor y = detail::empty_tensor(sx.ndim() == 1 ? Shape{m} : Shape{m, n}, W.dtype());
  detail::visit_dtype(W.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::data_mut<T>(y, op);
    const T* pb = bias.defined() ? detail::data<T>(bias, op) : nullptr;
    const T* pbase = base.defined() ? detail::data<T>(base, op) + base_first : nullptr;
    // The base and the bias first, then the product added onto them by β = 1.
    if (pb || pbase) prefill(out, pbase, base_ld, pb, m, n);
    const T* pw = detail::data<T>(W, op);
    const T* px = detail::data<T>(x, op);
    if (k == 0) {  // an empty sum (BLAS may return before touching C)
      if (!pb && !pbase) std::fill(out, out + m * n, T(0));
      return;
    }
    if constexpr (std::is_same_v<T, float>)
      if (sx.ndim() == 2 && packed_product(W, false, px, n, out, n, m, n, k, pb || pbase))
        return;
    gemm<T>(pw, px, out, m, n, k, false, false, pb || pbase ? T(1) : T(0));
  });
  return y;
}

// ---- a sequence's steps side by side (affine_seq) ----

Tensor affine_seq(const char* op, const Tensor& W, const Tensor& x, const Tensor& bias) {
  const std::size_t m = W.shape()[0], k = W.shape()[1], T = x.shape()[0], B = x.shape()[2], n = T * B;
  Tensor y = detail::empty_tensor(Shape{m, n}, W.dtype());
  detail::visit_dtype(W.dtype(), [&](auto tag) {
    using V = decltype(tag);
    V* out = detail::data_mut<V>(y, op);
    const V* pw = detail::data<V>(W, op);
    const V* px = detail::data<V>(x, op);
    const V* pb = bias.defined() ? detail::data<V>(bias, op) : nullptr;
    if (k == 0) {  // an empty sum: the bias alone, or zeros
      if (pb) prefill<V>(out, nullptr, n, pb, m, n);
      else std::fill(out, out + m * n, V(0));
      return;
    }
    if (pb) prefill<V>(out, nullptr, n, pb, m, n);  // the bias in every column first, the products added on
    // Step t: columns [t·B, t·B + B) of y (row stride T·B) = W·x_t, x_t the (k, B) block at t·k·B.
    parallel_for(T, split_grain(m * k * B), [&](std::size_t t0, std::size_t t1) {
      for (std::size_t t = t0; t < t1; ++t)
        gemm_ld<V>(pw, k, px + t * k * B, B, out + t * B, n, m, B, k, false, false, pb ? V(1) : V(0));
    });
  });
  return y;
}

Tensor affine_seq_dx(const Tensor& W, const Tensor& dy, std::size_t T, std::size_t B) {
  const std::size_t m = W.shape()[0], k = W.shape()[1], n = T * B;
  Tensor dx = detail::empty_tensor(Shape{T, k, B}, W.dtype());
  detail::visit_dtype(W.dtype(), [&](auto tag) {
    using V = decltype(tag);
    V* out = detail::data_mut<V>(dx, "affine_seq");
    const V* pw = detail::data<V>(W, "affine_seq");
    const V* pdy = detail::data<V>(dy, "affine_seq");
    if (m == 0) {
      std::fill(out, out + T * k * B, V(0));
      return;
    }
    // Step t's block (k, B) = Wᵀ·dy_t, dy_t columns [t·B, t·B + B) of dy (row stride T·B).
    parallel_for(T, split_grain(m * k * B), [&](std::size_t t0, std::size_t t1) {
      for (std::size_t t = t0; t < t1; ++t) gemm_ld<V>(pw, k, pdy + t * B, n, out + t * k * B, B, k, B, m, true, false, V(0));
    });
  });
  return dx;
}

Tensor affine_seq_dw(const Tensor& dy, const Tensor& x) {
  const std::size_t m = dy.shape()[0], T = x.shape()[0], k = x.shape()[1], B = x.shape()[2], n = T * B;
  Tensor dw = detail::empty_tensor(Shape{m, k}, dy.dtype());
  detail::visit_dtype(dy.dtype(), [&](auto tag) {
    using V = decltype(tag);
    V* out = detail::data_mut<V>(dw, "affine_seq");
    const V* pdy = detail::data<V>(dy, "affine_seq");
    const V* px = detail::data<V>(x, "affine_seq");
    if (T == 0 || B == 0) {
      std::fill(out, out + m * k, V(0));
      return;
    }
    // Σ_t dy_t·x_tᵀ, the steps in order, each product added onto the sum so far.
    for (std::size_t t = 0; t < T; ++t)
      gemm_ld<V>(pdy + t * B, n, px + t * k * B, B, out, k, m, k, B, false, true, t ? V(1) : V(0));
  });
  return dw;
}

}  // namespace rwd::kernels
