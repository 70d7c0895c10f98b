// y = W·x + b    W (m, k); x (k, n) or (k,); b (m,) or (m, 1) — one bias per row, the same for every
//                column — or (m, n), a whole base to add to (an earlier affine's output); or none.
//                The base may also be a wider (m, N) matrix of which columns [j, j + n) are added
//                (a sequence's input projection, one step's block of it).
// backward: prim::affine_rule[2·has_bias + has_base] (autograd/primitives.hpp) — a bias column takes
// Σ_columns dy, a base takes dy (a wider base: into its columns [j, j + n), added in place)
//
// affine_steps: y = W·[x₀ x₁ …] + b, the blocks side by side (a sequence's steps); backward the same
// rule with x = [x₀ x₁ …] gathered again (dW += dy·xᵀ as one product), each block taking its columns
// of Wᵀ·dy.
//
// affine_seq: y = W·[x₀ x₁ …] + b for the steps of a (time, cols, batch) sequence, one product a step
// into its columns (no permuted copy); backward the same rule step by step: dW = Σ_t dy_t·x_tᵀ, and
// step t's block of dx = Wᵀ·dy_t.
//
// One primitive for what matmul + reshape + add would record as three: the bias (or base) is written
// into the output first and the product is added onto it by GEMM with β = 1, so the output is
// written once and no broadcast add runs. The same value as the composition (tested).
#include <cstdint>

#include "op.hpp"

namespace rwd {

namespace {

// Whether b's dimensions are one bias per row of an m-row output: (m,) or (m, 1).
bool row_bias(const detail::Dims& sb, std::size_t m) {
  return (sb.ndim() == 1 && sb[0] == m) || (sb.ndim() == 2 && sb[0] == m && sb[1] == 1);
}

// `wide`: the base may be wider than the output (the five-argument form).
Tensor affine_impl(const Tensor& W, const Tensor& x, const Tensor& b_in, const Tensor& base_in, std::size_t base_first,
                   bool wide) {
  // ---- shape check ---- (the dimensions read in place; the messages build the Shapes)
  const detail::Dims sw = detail::dims(W), sx = detail::dims(x);
  const bool vec = sx.ndim() == 1;
  auto fail = [&](const std::string& why) {
    const Shape w = W.shape(), xs = x.shape();
    if (b_in.defined() && base_in.defined())
      throw_shape_error("affine", {{"W", w}, {"x", xs}, {"b", b_in.shape()}, {"base", base_in.shape()}}, why);
    if (b_in.defined()) throw_shape_error("affine", {{"W", w}, {"x", xs}, {"b", b_in.shape()}}, why);
    if (base_in.defined()) throw_shape_error("affine", {{"W", w}, {"x", xs}, {"base", base_in.shape()}}, why);
    throw_shape_error("affine", {{"W", w}, {"x", xs}}, why);
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
    const detail::Dims sb = detail::dims(b_in);
    detail::check_same_dtype("affine", W, b_in);
    if (row_bias(sb, m)) bias = b_in;
    else if (sb == so && !base.defined()) base = b_in;
    else
      fail("b must be (" + std::to_string(m) + ",) or (" + std::to_string(m) + ", 1), one bias per row" +
           (base_in.defined() ? std::string() : ", or " + so.str() + ", the output's shape"));
  }
  // A base wider than the output: only columns [base_first, base_first + n) are added.
  const bool window = wide && base_in.defined() && !(base_first == 0 && detail::dims(base_in) == so);
  if (base_in.defined()) {
    detail::check_same_dtype("affine", W, base_in);
    const detail::Dims sb = detail::dims(base_in);
    // base_first > N − n, not base_first + n > N: a base_first near SIZE_MAX would wrap the sum past
    // the check and read before the base.
    if (window && (vec || sb.ndim() != 2 || sb[0] != m || n > sb[1] || base_first > sb[1] - n))
      fail("base must have the output's shape " + so.str() + ", or be (" + std::to_string(m) +
           ", N) with the output's " + std::to_string(n) + " columns from column " + std::to_string(base_first) +
           " inside it");
    if (!window && sb != so) fail("base must have the output's shape " + so.str());
  } else if (base_first != 0) {
    fail("base_first " + std::to_string(base_first) + " given without a base");
  }

  // ---- forward: the base and the bias first, then the product added onto them ----
  Tensor y = kernels::affine("affine", W, x, bias, base, window ? base_first : 0);

  // ---- backward ----
  const Primitive& rule = prim::affine_rule[2 * bias.defined() + base.defined()];
  std::vector<Tensor> inputs;
  inputs.reserve(2 + bias.defined() + base.defined());
  inputs.push_back(W);
  inputs.push_back(x);
  // Input indices as bytes, so that the captures fit in std::function's own 16 bytes (no allocation).
  const std::uint8_t ib = bias.defined() ? static_cast<std::uint8_t>(inputs.size()) : 0;
  if (bias.defined()) inputs.push_back(bias);
  const std::uint8_t ibase = base.defined() ? static_cast<std::uint8_t>(inputs.size()) : 0;
  if (base.defined()) inputs.push_back(base);
  const std::size_t first = window ? base_first : 0;
  return record(rule, std::move(inputs), y, [vec, ib, ibase, window, first](BackwardContext& c) {
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
      else c.accumulate(ib, kernels::sum("affine", dy, Shape{m, 1}, sb));  // Σ over columns, one pass
    }
    if (ibase && c.needs_grad(ibase)) {
      if (window) c.accumulate_slice(ibase, dy, 1, first, first + dy.dim(1), 1);  // dbase[:, j:j+n] += dy
      else c.accumulate(ibase, dy);
    }
  });
}

}  // namespace

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b) { return affine_impl(W, x, b, Tensor(), 0, false); }

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b, const Tensor& base) {
  return affine_impl(W, x, b, base, 0, false);
}

Tensor affine(const Tensor& W, const Tensor& x, const Tensor& b, const Tensor& base, std::size_t base_first) {
  return affine_impl(W, x, b, base, base_first, true);
}

Tensor affine_steps(const Tensor& W, const std::vector<Tensor>& xs, const Tensor& b) {
  // ---- shape check ----
  if (xs.empty()) throw ValueError("affine_steps: no blocks to project");
  const Shape sw = W.shape();
  if (sw.ndim() != 2) throw_shape_error("affine_steps", {{"W", sw}}, "W must be a 2-D (rows, cols) matrix");
  std::size_t n = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    const Shape si = xs[i].shape();
    if (si.ndim() != 2 || si[0] != sw[1])
      throw_shape_error("affine_steps", {{"W", sw}, {("x" + std::to_string(i)).c_str(), si}},
                        "every block must be (" + std::to_string(sw[1]) + ", batch): W.shape[1] rows");
    detail::check_same_dtype("affine_steps", W, xs[i]);
    n += si[1];
  }
  const std::size_t m = sw[0];
  if (b.defined()) {
    detail::check_same_dtype("affine_steps", W, b);
    if (!row_bias(detail::dims(b), m))
      throw_shape_error("affine_steps", {{"W", sw}, {"b", b.shape()}},
                        "b must be (" + std::to_string(m) + ",) or (" + std::to_string(m) + ", 1), one bias per row");
  }

  // ---- forward: the blocks gathered for one product, then let go ----
  Tensor y = kernels::affine("affine_steps", W, kernels::concat("affine_steps", xs, 1, Shape{sw[1], n}), b, Tensor());

  // ---- backward ----
  std::vector<Tensor> inputs = {W};
  inputs.insert(inputs.end(), xs.begin(), xs.end());
  const std::size_t ib = b.defined() ? inputs.size() : 0;
  if (b.defined()) inputs.push_back(b);
  // The rule's x is every step's block side by side: all of them are read (the rule's reads say x₀ only);
  // the output is not.
  Primitive rule = prim::affine_rule[2 * b.defined()];
  rule.reads = kReadsAll & ~kReadsOutput;
  return record(rule, std::move(inputs), y, [ib](BackwardContext& c) {
    const Tensor &W = c.input(0), &dy = c.grad_out();
    const std::size_t blocks = c.num_inputs() - 1 - (ib ? 1 : 0);
    std::vector<Tensor> xs;
    bool any_x = false;
    for (std::size_t i = 1; i <= blocks; ++i) {
      xs.push_back(c.input(i));
      any_x = any_x || c.needs_grad(i);
    }
    if (c.needs_grad(0)) c.accumulate_matmul(0, dy, concat(xs, 1), false, true);  // dW += dy·[x₀ x₁ …]ᵀ
    if (any_x) {
      const Tensor dx = matmul(W, dy, true, false);  // Wᵀ·dy, then each block its own columns
      std::size_t at = 0;
      for (std::size_t i = 1; i <= blocks; ++i) {
        const std::size_t cols = c.input(i).dim(1);
        if (c.needs_grad(i)) c.accumulate(i, slice(dx, 1, at, at + cols));
        at += cols;
      }
    }
    if (ib && c.needs_grad(ib)) {
      const Shape sb = c.input(ib).shape();
      if (GradMode::enabled()) c.accumulate(ib, reshape(sum(dy, {1}), sb));  // create_graph
      else c.accumulate(ib, kernels::sum("affine", dy, Shape{W.dim(0), 1}, sb));  // Σ over columns, one pass
    }
  });
}

Tensor affine_seq(const Tensor& W, const Tensor& x, const Tensor& b) {
  // ---- shape check ----
  const Shape sw = W.shape(), sx = x.shape();
  auto fail = [&](const std::string& why) {
    if (b.defined()) throw_shape_error("affine_seq", {{"W", sw}, {"x", sx}, {"b", b.shape()}}, why);
    throw_shape_error("affine_seq", {{"W", sw}, {"x", sx}}, why);
  };
  if (sw.ndim() != 2) fail("W must be a 2-D (rows, cols) matrix");
  if (sx.ndim() != 3) fail("x must be a (time, cols, batch) sequence");
  if (sx[1] != sw[1])
    fail("x.shape[1] (" + std::to_string(sx[1]) + ") must equal W.shape[1] (" + std::to_string(sw[1]) + ")");
  detail::check_same_dtype("affine_seq", W, x);
  const std::size_t m = sw[0], T = sx[0], k = sx[1], B = sx[2];
  if (b.defined()) {
    detail::check_same_dtype("affine_seq", W, b);
    if (!row_bias(detail::dims(b), m))
      fail("b must be (" + std::to_string(m) + ",) or (" + std::to_string(m) + ", 1), one bias per row");
  }

  // ---- forward: one product a step, each into its columns (no permuted copy) ----
  Tensor y = kernels::affine_seq("affine_seq", W, x, b);

  // ---- backward ----
  std::vector<Tensor> inputs = {W, x};
  if (b.defined()) inputs.push_back(b);
  Primitive rule = prim::affine_rule[2 * b.defined()];
  rule.reads = kReadsAll & ~kReadsOutput;
  return record(rule, std::move(inputs), y, [m, T, k, B](BackwardContext& c) {
    const Tensor &W = c.input(0), &x = c.input(1), &dy = c.grad_out();
    if (GradMode::enabled()) {  // create_graph: the same through differentiable ops
      if (c.needs_grad(0)) c.accumulate(0, matmul(dy, reshape(permute(x, {1, 0, 2}), {k, T * B}), false, true));
      if (c.needs_grad(1)) c.accumulate(1, permute(reshape(matmul(W, dy, true, false), {k, T, B}), {1, 0, 2}));
      if (c.num_inputs() > 2 && c.needs_grad(2)) c.accumulate(2, reshape(sum(dy, {1}), c.input(2).shape()));
      return;
    }
    if (c.needs_grad(0)) c.accumulate(0, kernels::affine_seq_dw(dy, x));       // Σ_t dy_t·x_tᵀ
    if (c.needs_grad(1)) c.accumulate(1, kernels::affine_seq_dx(W, dy, T, B));  // Wᵀ·dy_t, step by step
    if (c.num_inputs() > 2 && c.needs_grad(2))
      c.accumulate(2, kernels::sum("affine", dy, Shape{m, 1}, c.input(2).shape()));  // Σ over columns
  });
}

}  // namespace rwd
