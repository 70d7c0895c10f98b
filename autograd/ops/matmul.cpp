// C = op(A)·op(B), op(X) = X or Xᵀ by flag; 2-D, or batched over a leading dimension.
// For C = A·B:    dA += dC·Bᵀ      dB += Aᵀ·dC
// For C = A·Bᵀ:   dA += dC·B       dB += dCᵀ·A
// For C = Aᵀ·B:   dA += B·dCᵀ      dB += A·dC
// For C = Aᵀ·Bᵀ:  dA += Bᵀ·dCᵀ     dB += dCᵀ·Aᵀ
// Every product goes to BLAS gemm with its transpose flags, so no transpose is ever copied.
#include <algorithm>

#include <xtensor-blas/xblas.hpp>

#include "matmul_kernel.hpp"
#include "op.hpp"

namespace rwd {

namespace {

std::string flagged(const char* name, bool t) { return t ? std::string(name) + "ᵀ" : std::string(name); }

// One row-major (m, k)·(k, n) product, transposes by flag; cxxblas dispatches to cblas_sgemm/dgemm.
template <class T>
void gemm(const T* a, const T* b, T* c, std::size_t m, std::size_t n, std::size_t k, bool ta, bool tb, T beta) {
  if (m * n * k <= 512) {  // tiny products: a plain loop costs less than the BLAS call
    // Element strides of op(a) (i, p) and op(b) (p, j), so one loop serves all four transposes.
    const std::size_t ai = ta ? 1 : k, ap = ta ? m : 1, bp = tb ? 1 : n, bj = tb ? k : 1;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        const T* x = a + i * ai;
        const T* y = b + j * bj;
        T acc = 0;
        for (std::size_t p = 0; p < k; ++p) acc += x[p * ap] * y[p * bp];
        c[i * n + j] = beta == T(0) ? acc : acc + beta * c[i * n + j];
      }
    return;
  }
  using I = xt::blas_index_t;
  using cxxblas::Transpose;
  cxxblas::gemm<I>(cxxblas::StorageOrder::RowMajor, ta ? Transpose::Trans : Transpose::NoTrans,
                   tb ? Transpose::Trans : Transpose::NoTrans, static_cast<I>(m), static_cast<I>(n),
                   static_cast<I>(k), T(1), a, static_cast<I>(std::max<std::size_t>(ta ? m : k, 1)), b,
                   static_cast<I>(std::max<std::size_t>(tb ? k : n, 1)), beta, c,
                   static_cast<I>(std::max<std::size_t>(n, 1)));
}

}  // namespace

namespace detail {

Shape matmul_shape(const char* op, const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const Shape sa = a.shape(), sb = b.shape();
  if (!((sa.ndim() == 2 && sb.ndim() == 2) || (sa.ndim() == 3 && sb.ndim() == 3)))
    throw_shape_error(op, {{"lhs", sa}, {"rhs", sb}},
                      "operands must both be 2-D matrices or both 3-D batches of matrices");
  const std::size_t r = sa.ndim() - 2;  // first matrix axis
  if (r == 1 && sa[0] != sb[0])
    throw_shape_error(op, {{"lhs", sa}, {"rhs", sb}},
                      "lhs.shape[0] (" + std::to_string(sa[0]) + ") must equal rhs.shape[0] (" + std::to_string(sb[0]) +
                          ") (the batch size)");
  const std::size_t m = ta ? sa[r + 1] : sa[r], ka = ta ? sa[r] : sa[r + 1];
  const std::size_t kb = tb ? sb[r + 1] : sb[r], n = tb ? sb[r] : sb[r + 1];
  if (ka != kb) {
    const std::size_t ia = ta ? r : r + 1, ib = tb ? r + 1 : r;
    const std::string lhs = flagged("lhs", ta), rhs = flagged("rhs", tb);
    throw_shape_error(op, {{lhs.c_str(), sa}, {rhs.c_str(), sb}},
                      "lhs.shape[" + std::to_string(ia) + "] (" + std::to_string(ka) + ") must equal rhs.shape[" +
                          std::to_string(ib) + "] (" + std::to_string(kb) + ")");
  }
  check_same_dtype(op, a, b);
  return r == 1 ? Shape{sa[0], m, n} : Shape{m, n};
}

void gemm_into(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& c, double beta) {
  const Shape sa = a.shape(), so = c.shape();
  const std::size_t r = sa.ndim() - 2;
  const std::size_t batch = r == 1 ? sa[0] : 1;
  const std::size_t m = so[r], n = so[r + 1], k = ta ? sa[r] : sa[r + 1];
  visit_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* x = array<T>(a, "matmul").data();
    const T* y = array<T>(b, "matmul").data();
    T* out = array_mut<T>(c, "matmul").data();
    if (k == 0) {  // an empty sum: zeros (BLAS may return before touching C)
      if (beta == 0.0) std::fill(out, out + batch * m * n, T(0));
      return;
    }
    for (std::size_t i = 0; i < batch; ++i)
      gemm<T>(x + i * m * k, y + i * k * n, out + i * m * n, m, n, k, ta, tb, static_cast<T>(beta));
  });
}

}  // namespace detail

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // ---- shape check ----
  const Shape so = detail::matmul_shape("matmul", a, b, ta, tb);

  // ---- forward ----
  // Uninitialized: gemm with β = 0 writes every element (and an empty inner dimension gives zeros).
  Tensor c = detail::empty_tensor(so, a.dtype());
  detail::gemm_into(a, b, ta, tb, c, 0.0);

  // ---- backward ----
  const char* rule = !ta && !tb ? "dA += dC·Bᵀ; dB += Aᵀ·dC"
                     : !ta      ? "dA += dC·B; dB += dCᵀ·A"
                     : !tb      ? "dA += B·dCᵀ; dB += A·dC"
                                : "dA += Bᵀ·dCᵀ; dB += dCᵀ·Aᵀ";
  return record("matmul", {a, b}, c, rule, [ta, tb](BackwardContext& ctx) {
    const Tensor &A = ctx.input(0), &B = ctx.input(1), &dC = ctx.grad_out();
    if (ctx.needs_grad(0)) {
      if (!ta) ctx.accumulate_matmul(0, dC, B, false, !tb);  // dC·Bᵀ or dC·B
      else ctx.accumulate_matmul(0, B, dC, tb, true);        // B·dCᵀ or Bᵀ·dCᵀ
    }
    if (ctx.needs_grad(1)) {
      if (!tb) ctx.accumulate_matmul(1, A, dC, !ta, false);  // Aᵀ·dC or A·dC
      else ctx.accumulate_matmul(1, dC, A, true, ta);        // dCᵀ·A or dCᵀ·Aᵀ
    }
  });
}

}  // namespace rwd
