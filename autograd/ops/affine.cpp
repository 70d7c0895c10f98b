// y = W·x + b    W (m, k); x (k, n) or (k,); b (m,) or (m, 1) — one bias per row, the same for every
//                column — or (m, n), a whole base to add to (an earlier affine's output); or none.
// dW += dy·xᵀ;  dx += Wᵀ·dy;  db += Σ_columns dy (a bias column), or dy (a base)
//
// One primitive for what matmul + reshape + add would record as three: the bias (or base) is written
// into the output first and the product is added onto it by GEMM with β = 1, so the output is
// written once and no broadcast add runs. The same value as the composition (tested).
#include "matmul_kernel.hpp"
#include "op.hpp"

namespace rwd {

namespace {

enum class BiasKind { none, column, base };

// Σ over the columns of dy (m, n), as a tensor of the bias's shape: the bias gradient in one loop.
Tensor row_sums(const Tensor& dy, const Shape& shape) {
  const std::size_t m = dy.dim(0), n = dy.dim(1);
  Tensor out = detail::empty_tensor(shape, dy.dtype());
  detail::visit_dtype(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* g = detail::array<T>(dy, "affine").data();
    T* o = detail::array_mut<T>(out, "affine").data();
    for (std::size_t i = 0; i < m; ++i) {
      T acc = 0;
      for (std::size_t j = 0; j < n; ++j) acc += g[i * n + j];
      o[i] = acc;
    }
  });
  return out;
}

}  // namespace

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b) {
  // ---- shape check ----
  const Shape sw = W.shape(), sx = x.shape();
  const bool vec = sx.ndim() == 1;
  auto fail = [&](const std::string& why) {
    if (b.defined()) throw_shape_error("affine", {{"W", sw}, {"x", sx}, {"b", b.shape()}}, why);
    throw_shape_error("affine", {{"W", sw}, {"x", sx}}, why);
  };
  if (sw.ndim() != 2) fail("W must be a 2-D (rows, cols) matrix");
  if (sx.ndim() != 1 && sx.ndim() != 2) fail("x must be (cols, batch) or (cols,)");
  if (sx[0] != sw[1])
    fail("x.shape[0] (" + std::to_string(sx[0]) + ") must equal W.shape[1] (" + std::to_string(sw[1]) + ")");
  detail::check_same_dtype("affine", W, x);
  const std::size_t m = sw[0], n = vec ? 1 : sx[1];
  const Shape so = vec ? Shape{m} : Shape{m, n};
  BiasKind kind = BiasKind::none;
  if (b.defined()) {
    const Shape sb = b.shape();
    detail::check_same_dtype("affine", W, b);
    if (sb == Shape{m} || sb == Shape{m, 1}) kind = BiasKind::column;
    else if (sb == so) kind = BiasKind::base;
    else
      fail("b must be (" + std::to_string(m) + ",) or (" + std::to_string(m) + ", 1), one bias per row, or " +
           so.str() + ", the output's shape");
  }

  // ---- forward: the bias (or base) first, then the product added onto it ----
  Tensor y = detail::empty_tensor(so, W.dtype());
  detail::visit_dtype(W.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::array_mut<T>(y, "affine").data();
    if (kind == BiasKind::column) {
      const T* bias = detail::array<T>(b, "affine").data();
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) out[i * n + j] = bias[i];
    } else if (kind == BiasKind::base) {
      const T* base = detail::array<T>(b, "affine").data();
      std::copy(base, base + m * n, out);
    }
  });
  {
    // gemm on (k, n) views of x: a vector is a one-column matrix in memory.
    NoGradGuard no_grad;
    const Tensor x2 = vec ? reshape(x, {sx[0], 1}) : x;
    const Tensor y2 = vec ? reshape(y, {m, 1}) : y;
    detail::gemm_into(W, x2, false, false, y2, kind == BiasKind::none ? 0.0 : 1.0);
    if (vec) y = reshape(y2, so);
  }

  // ---- backward ----
  const char* rule = kind == BiasKind::base ? "dW += dy·xᵀ; dx += Wᵀ·dy; db += dy" : "dW += dy·xᵀ; dx += Wᵀ·dy; db += Σ_cols dy";
  std::vector<Tensor> inputs = {W, x};
  if (b.defined()) inputs.push_back(b);
  return record("affine", std::move(inputs), y, rule, [vec, kind](BackwardContext& c) {
    const Tensor &W = c.input(0), &x = c.input(1), &dy = c.grad_out();
    const std::size_t m = W.dim(0), k = W.dim(1);
    const Tensor dy2 = vec ? reshape(dy, {m, 1}) : dy;
    if (c.needs_grad(0)) c.accumulate_matmul(0, dy2, vec ? reshape(x, {k, 1}) : x, false, true);
    if (c.needs_grad(1)) {
      if (vec) c.accumulate(1, reshape(matmul(W, dy2, true, false), {k}));
      else c.accumulate_matmul(1, W, dy2, true, false);
    }
    if (kind != BiasKind::none && c.needs_grad(2)) {
      const Tensor& b = c.input(2);
      if (kind == BiasKind::base || vec) c.accumulate(2, reshape(dy, b.shape()));
      else if (GradMode::enabled()) c.accumulate(2, reshape(sum(dy, {1}), b.shape()));  // create_graph
      else c.accumulate(2, row_sums(dy, b.shape()));
    }
  });
}

}  // namespace rwd
