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

// Σ over the columns of dy (m, n), as a tensor of the bias's shape: the bias gradient in one pass.
Tensor row_sums(const Tensor& dy, const Shape& shape) {
  const Shape sy = dy.shape();
  Tensor out = Tensor::zeros(shape, dy.dtype());
  detail::visit_dtype(dy.dtype(), [&](auto tag) {
    using T = decltype(tag);
    detail::reduce_sum<T>(detail::array<T>(dy, "affine").data(), sy, detail::array_mut<T>(out, "affine").data(),
                          Shape{sy[0], 1});
  });
  return out;
}

}  // namespace

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b) { return affine(W, x, b, Tensor()); }

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b_in, const Tensor& base_in) {
  // ---- shape check ----
  const Shape sw = W.shape(), sx = x.shape();
  const bool vec = sx.ndim() == 1;
  auto fail = [&](const std::string& why) {
    if (b_in.defined() && base_in.defined())
      throw_shape_error("affine", {{"W", sw}, {"x", sx}, {"b", b_in.shape()}, {"base", base_in.shape()}}, why);
    if (b_in.defined()) throw_shape_error("affine", {{"W", sw}, {"x", sx}, {"b", b_in.shape()}}, why);
    if (base_in.defined()) throw_shape_error("affine", {{"W", sw}, {"x", sx}, {"base", base_in.shape()}}, why);
    throw_shape_error("affine", {{"W", sw}, {"x", sx}}, why);
  };
  if (sw.ndim() != 2) fail("W must be a 2-D (rows, cols) matrix");
  if (sx.ndim() != 1 && sx.ndim() != 2) fail("x must be (cols, batch) or (cols,)");
  if (sx[0] != sw[1])
    fail("x.shape[0] (" + std::to_string(sx[0]) + ") must equal W.shape[1] (" + std::to_string(sw[1]) + ")");
  detail::check_same_dtype("affine", W, x);
  const std::size_t m = sw[0], n = vec ? 1 : sx[1];
  const Shape so = vec ? Shape{m} : Shape{m, n};
  // A per-row bias and/or a base of the output's shape (b of the output's shape alone is a base).
  Tensor bias, base = base_in;
  if (b_in.defined()) {
    const Shape sb = b_in.shape();
    detail::check_same_dtype("affine", W, b_in);
    if (sb == Shape{m} || sb == Shape{m, 1}) bias = b_in;
    else if (sb == so && !base.defined()) base = b_in;
    else
      fail("b must be (" + std::to_string(m) + ",) or (" + std::to_string(m) + ", 1), one bias per row" +
           (base_in.defined() ? std::string() : ", or " + so.str() + ", the output's shape"));
  }
  if (base_in.defined()) {
    detail::check_same_dtype("affine", W, base_in);
    if (base_in.shape() != so) fail("base must have the output's shape " + so.str());
  }

  // ---- forward: the base and the bias first, then the product added onto them ----
  Tensor y = detail::empty_tensor(so, W.dtype());
  detail::visit_dtype(W.dtype(), [&](auto tag) {
    using T = decltype(tag);
    T* out = detail::array_mut<T>(y, "affine").data();
    const T* pb = bias.defined() ? detail::array<T>(bias, "affine").data() : nullptr;
    const T* pbase = base.defined() ? detail::array<T>(base, "affine").data() : nullptr;
    if (pb && pbase) {
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) out[i * n + j] = pbase[i * n + j] + pb[i];
    } else if (pb) {
      for (std::size_t i = 0; i < m; ++i)
        for (std::size_t j = 0; j < n; ++j) out[i * n + j] = pb[i];
    } else if (pbase) {
      std::copy(pbase, pbase + m * n, out);
    }
  });
  {
    // gemm on (k, n) views of x: a vector is a one-column matrix in memory.
    NoGradGuard no_grad;
    const Tensor x2 = vec ? reshape(x, {sx[0], 1}) : x;
    const Tensor y2 = vec ? reshape(y, {m, 1}) : y;
    detail::gemm_into(W, x2, false, false, y2, bias.defined() || base.defined() ? 1.0 : 0.0);
    if (vec) y = reshape(y2, so);
  }

  // ---- backward ----
  const char* rule = bias.defined() && base.defined() ? "dW += dy·xᵀ; dx += Wᵀ·dy; db += Σ_cols dy; dbase += dy"
                     : base.defined()                 ? "dW += dy·xᵀ; dx += Wᵀ·dy; dbase += dy"
                     : bias.defined()                 ? "dW += dy·xᵀ; dx += Wᵀ·dy; db += Σ_cols dy"
                                                      : "dW += dy·xᵀ; dx += Wᵀ·dy";
  std::vector<Tensor> inputs = {W, x};
  const std::size_t ib = bias.defined() ? inputs.size() : 0;
  if (bias.defined()) inputs.push_back(bias);
  const std::size_t ibase = base.defined() ? inputs.size() : 0;
  if (base.defined()) inputs.push_back(base);
  return record("affine", std::move(inputs), y, rule, [vec, ib, ibase](BackwardContext& c) {
    const Tensor &W = c.input(0), &x = c.input(1), &dy = c.grad_out();
    const std::size_t m = W.dim(0), k = W.dim(1);
    const Tensor dy2 = vec ? reshape(dy, {m, 1}) : dy;
    if (c.needs_grad(0)) c.accumulate_matmul(0, dy2, vec ? reshape(x, {k, 1}) : x, false, true);
    if (c.needs_grad(1)) {
      if (vec) c.accumulate(1, reshape(matmul(W, dy2, true, false), {k}));
      else c.accumulate_matmul(1, W, dy2, true, false);
    }
    if (ib && c.needs_grad(ib)) {
      const Shape sb = c.input(ib).shape();
      if (vec) c.accumulate(ib, reshape(dy, sb));
      else if (GradMode::enabled()) c.accumulate(ib, reshape(sum(dy, {1}), sb));  // create_graph
      else c.accumulate(ib, row_sums(dy, sb));
    }
    if (ibase && c.needs_grad(ibase)) c.accumulate(ibase, dy);
  });
}

}  // namespace rwd
