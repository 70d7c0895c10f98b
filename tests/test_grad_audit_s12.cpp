// Gradient audit of the fast paths (issue 12): each op whose value is computed another way for some
// shapes — affine and its bias / base / base window, affine_steps, affine_seq, the tiny GEMM's k = 1
// and n = 1 loops, sum over extent-1 axes, index_select along the last axis, slices as views, the
// sweep's gathered weight-gradient products, loops split across threads — checked in float64 on
// random shapes that reach those paths (extent-1 axes, k = 1, n = 1, batch 1, (cols,) against
// (cols, 1), zero-size axes, views and permutes as inputs, one tensor as two operands):
//   · against central differences (gradcheck) and, where the op has double backward, gradgradcheck;
//   · against the plain composition the fast path stands for (value and gradients);
//   · at 1, 2 and 3 threads;
//   · through backward() into .grad() (which gathers products with 2+ threads) as well as grad().
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

#include "core/threads.hpp"
#include "kernels/simd.hpp"

using namespace rwd;

namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

/// The thread count for one scope.
struct Threads {
  int previous = get_num_threads();
  explicit Threads(int n) { set_num_threads(n); }
  ~Threads() { set_num_threads(previous); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;
};

/// A float64 leaf of `shape`, N(0, scale²) values, requires_grad.
Tensor leaf(const Shape& shape, Generator& g, double scale = 1.0) {
  Tensor t = Tensor::randn(shape, g, float64) * scale;
  return t.detach().set_requires_grad();
}

/// Values as doubles.
std::vector<double> values(const Tensor& t) { return t.to(float64).to_vector(); }

/// max |a − b| / (1 + |b|) over elements (shapes must agree: a failed CHECK otherwise).
double rel_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = values(a), y = values(b);
  double d = 0;
  for (std::size_t i = 0; i < x.size(); ++i) d = std::max(d, std::abs(x[i] - y[i]) / (1 + std::abs(y[i])));
  return d;
}

/// Fixed, asymmetric weights of `shape` to scalarize an output (STYLE rule 12).
Tensor weights(const Shape& shape, std::uint32_t seed = 7) {
  Generator g(seed);
  return Tensor::uniform(shape, 0.5, 1.5, g, float64) * Tensor::scalar(1.0, float64);
}

/// d Σ(f(in) ⊙ w) / d in by backward() into .grad() (so the sweep's in-place and gathered paths run),
/// zeros where nothing reached.
std::vector<Tensor> backward_grads(const Fn& f, const std::vector<Tensor>& in) {
  for (Tensor x : in) x.zero_grad(true);
  std::vector<Tensor> out;
  {
    Tape tape;
    const Tensor y = f(in);
    const Tensor L = sum(y * weights(y.shape()));
    if (L.requires_grad()) backward(L);
  }
  for (const Tensor& x : in) out.push_back(x.grad().defined() ? x.grad().detach() : Tensor::zeros(x.shape(), float64));
  for (Tensor x : in) x.zero_grad(true);
  return out;
}

/// gradcheck and (when `second`) gradgradcheck of f at 1, 2 and 3 threads, and backward()'s .grad()
/// equal to grad()'s at each (checked by gradcheck against finite differences).
void check_fd(const std::string& family, const std::string& what, const Fn& f, const std::vector<Tensor>& in,
              bool second, GradcheckOptions options = {}) {
  for (int threads : {1, 2, 3}) {
    Threads t(threads);
    const GradcheckReport r = gradcheck(f, in, options);
    CHECK_MESSAGE(r.ok(), family << ": " << what << " at " << threads << " threads\n" << r.str());
    if (second) {
      const GradcheckReport r2 = gradgradcheck(f, in, options);
      CHECK_MESSAGE(r2.ok(), family << ": " << what << " at " << threads << " threads\n" << r2.str());
    }
    // backward() into .grad() against grad() (what gradcheck validated).
    std::vector<Tensor> targets;
    for (const Tensor& x : in)
      if (x.requires_grad()) targets.push_back(x);
    std::vector<Tensor> by_grad;
    {
      Tape tape;
      const Tensor y = f(in);
      const Tensor L = sum(y * weights(y.shape()));
      if (L.requires_grad()) by_grad = grad({L}, targets, {}, {}, true);
    }
    const std::vector<Tensor> by_backward = backward_grads(f, in);
    std::size_t k = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      if (!in[i].requires_grad()) continue;
      const Tensor g = k < by_grad.size() && by_grad[k].defined() ? by_grad[k] : Tensor::zeros(in[i].shape(), float64);
      ++k;
      CHECK_MESSAGE(rel_diff(by_backward[i], g) < 1e-12,
                    family << ": " << what << " at " << threads << " threads: backward() and grad() differ for input " << i);
    }
  }
}

/// f and its composition `ref` give the same value and gradients (within float64 rounding).
void check_same(const std::string& what, const Fn& f, const Fn& ref, const std::vector<Tensor>& in, double tol = 1e-12) {
  for (int threads : {1, 2, 3}) {
    Threads t(threads);
    Tensor a, b;
    {
      NoGradGuard no;
      a = f(in);
      b = ref(in);
    }
    REQUIRE_MESSAGE(a.shape() == b.shape(), what << ": shape " << a.shape().str() << " against the composition's "
                                                 << b.shape().str());
    CHECK_MESSAGE(rel_diff(a, b) < tol, what << " at " << threads << " threads: value differs from the composition");
    const std::vector<Tensor> ga = backward_grads(f, in), gb = backward_grads(ref, in);
    for (std::size_t i = 0; i < in.size(); ++i)
      if (in[i].requires_grad())
        CHECK_MESSAGE(rel_diff(ga[i], gb[i]) < tol,
                      what << " at " << threads << " threads: gradient of input " << i << " differs from the composition's");
  }
}

std::size_t pick(Generator& g, std::initializer_list<std::size_t> from) {
  return *(from.begin() + g.integer(from.size()));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// affine

TEST_CASE("audit s12: affine(W, x, b), affine(W, x, b, base), affine(W, x, b, base, first) on random edge shapes") {
  Generator g(1201);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t m = pick(g, {0, 1, 1, 2, 3, 5}), k = pick(g, {0, 1, 1, 2, 4, 7}), n = pick(g, {0, 1, 1, 3, 6});
    const bool vec = g.integer(4) == 0;
    const std::size_t cols = vec ? 1 : n;
    const int bias_kind = static_cast<int>(g.integer(3));  // 0 none, 1 (m,), 2 (m, 1)
    const int base_kind = static_cast<int>(g.integer(vec ? 2 : 3));  // 0 none, 1 output's shape, 2 window
    const std::size_t extra = pick(g, {0, 1, 3}), first = base_kind == 2 ? g.integer(extra + 1) : 0;
    const Shape sx = vec ? Shape{k} : Shape{k, n};
    const Shape so = vec ? Shape{m} : Shape{m, n};
    std::vector<Tensor> in{leaf({m, k}, g), leaf(sx, g)};
    if (bias_kind) in.push_back(leaf(bias_kind == 1 ? Shape{m} : Shape{m, 1}, g));
    if (base_kind) in.push_back(leaf(base_kind == 1 ? so : Shape{m, n + extra}, g));
    const std::string what = "W (" + std::to_string(m) + ", " + std::to_string(k) + ") x " + sx.str() + " bias " +
                             std::to_string(bias_kind) + " base " + std::to_string(base_kind) + " first " +
                             std::to_string(first);
    CAPTURE(what);
    const Fn fast = [&](const std::vector<Tensor>& v) {
      const Tensor b = bias_kind ? v[2] : Tensor();
      if (base_kind == 0) return affine(v[0], v[1], b);
      const Tensor& base = v.back();
      if (base_kind == 1) return affine(v[0], v[1], b, base);
      return affine(v[0], v[1], b, base, first);
    };
    const Fn ref = [&](const std::vector<Tensor>& v) {
      Tensor y = matmul(v[0], vec ? reshape(v[1], {k, 1}) : v[1]);
      if (bias_kind) y = y + reshape(v[2], {m, 1});
      if (base_kind == 1) y = y + (vec ? reshape(v.back(), {m, 1}) : v.back());
      if (base_kind == 2) y = y + slice(v.back(), 1, first, first + n);
      return vec ? reshape(y, {m}) : y;
    };
    {
      NoGradGuard no;
      REQUIRE(fast(in).shape() == so);
    }
    check_same("affine " + what, fast, ref, in);
    if (m * k * cols > 0) check_fd("affine", what, fast, in, true);
  }
}

TEST_CASE("audit s12: affine with one tensor as two operands, and with views and permutes as operands") {
  Generator g(1202);
  for (std::size_t m : {1, 2, 5, 12}) {  // 12: dW's products are gathered at 2 threads
    CAPTURE(m);
    // affine(W, W, b): W square is both the matrix and the batch of columns.
    const std::vector<Tensor> in{leaf({m, m}, g), leaf({m}, g)};
    const Fn fast = [](const std::vector<Tensor>& v) { return affine(v[0], v[0], v[1]); };
    const Fn ref = [m](const std::vector<Tensor>& v) { return matmul(v[0], v[0]) + reshape(v[1], {m, 1}); };
    check_same("affine(W, W, b)", fast, ref, in);
    check_fd("affine", "affine(W, W, b)", fast, in, true);
    // affine(W, x, b, b): x a vector, b both the bias and the base.
    const std::vector<Tensor> in2{leaf({m, 3}, g), leaf({3}, g), leaf({m}, g)};
    const Fn fast2 = [](const std::vector<Tensor>& v) { return affine(v[0], v[1], v[2], v[2]); };
    const Fn ref2 = [](const std::vector<Tensor>& v) { return reshape(matmul(v[0], reshape(v[1], {3, 1})), {v[0].dim(0)}) + v[2] + v[2]; };
    check_same("affine(W, x, b, b)", fast2, ref2, in2);
    check_fd("affine", "affine(W, x, b, b)", fast2, in2, true);
    // the base is W·x itself (an earlier affine's output) and the window reads a wider base twice.
    const std::vector<Tensor> in3{leaf({m, 2}, g), leaf({2, 3}, g), leaf({m, 7}, g)};
    const Fn fast3 = [](const std::vector<Tensor>& v) {
      const Tensor a = affine(v[0], v[1], Tensor(), v[2], 1);
      const Tensor b = affine(v[0], v[1], Tensor(), v[2], 4);
      return affine(v[0], v[1], Tensor(), a * b);
    };
    const Fn ref3 = [](const std::vector<Tensor>& v) {
      const Tensor p = matmul(v[0], v[1]);
      return p + (p + slice(v[2], 1, 1, 4)) * (p + slice(v[2], 1, 4, 7));
    };
    check_same("two windows of one base", fast3, ref3, in3);
    check_fd("affine", "two windows of one base", fast3, in3, true);
    // views and a permute as operands: W a leading-axis slice (a view), x a permuted matrix, the base a
    // reshaped vector, the window base itself a slice of a leaf along axis 0 (a view at an offset).
    const std::vector<Tensor> in4{leaf({m + 2, 4}, g), leaf({3, 4}, g), leaf({m * 3}, g), leaf({m + 1, 9}, g)};
    const Fn fast4 = [m](const std::vector<Tensor>& v) {
      const Tensor W = slice(v[0], 0, 1, m + 1);
      const Tensor x = permute(v[1], {1, 0});
      const Tensor y = affine(W, x, Tensor(), reshape(v[2], {m, 3}));
      return affine(W, x, Tensor(), slice(v[3], 0, 1, m + 1), 5) * y;
    };
    const Fn ref4 = [m](const std::vector<Tensor>& v) {
      const Tensor p = matmul(slice(v[0], 0, 1, m + 1), v[1], false, true);
      return (p + slice(slice(v[3], 0, 1, m + 1), 1, 5, 8)) * (p + reshape(v[2], {m, 3}));
    };
    check_same("views as operands", fast4, ref4, in4);
    check_fd("affine", "views as operands", fast4, in4, true);
  }
}

TEST_CASE("audit s12: affine_steps and affine_seq on random edge shapes, blocks repeated and permuted") {
  Generator g(1203);
  for (int trial = 0; trial < 16; ++trial) {
    const std::size_t m = pick(g, {1, 2, 4}), k = pick(g, {1, 1, 3, 5}), T = pick(g, {1, 2, 3});
    const bool bias = g.integer(2);
    std::vector<std::size_t> widths;
    for (std::size_t t = 0; t < T; ++t) widths.push_back(pick(g, {0, 1, 1, 2, 4}));
    if (std::all_of(widths.begin(), widths.end(), [](std::size_t w) { return w == 0; })) widths[0] = 1;
    std::vector<Tensor> in{leaf({m, k}, g)};
    for (std::size_t w : widths) in.push_back(leaf({k, w}, g));
    if (bias) in.push_back(leaf({m}, g));
    const bool twice = g.integer(3) == 0;  // the first block again at the end
    std::string what = "W (" + std::to_string(m) + ", " + std::to_string(k) + ") widths";
    for (std::size_t w : widths) what += " " + std::to_string(w);
    what += bias ? " bias" : "";
    what += twice ? " first block twice" : "";
    CAPTURE(what);
    const Fn fast = [&](const std::vector<Tensor>& v) {
      std::vector<Tensor> xs(v.begin() + 1, v.begin() + 1 + T);
      if (twice) xs.push_back(v[1]);
      return affine_steps(v[0], xs, bias ? v.back() : Tensor());
    };
    const Fn ref = [&](const std::vector<Tensor>& v) {
      std::vector<Tensor> xs(v.begin() + 1, v.begin() + 1 + T);
      if (twice) xs.push_back(v[1]);
      const Tensor y = matmul(v[0], concat(xs, 1));
      return bias ? y + reshape(v.back(), {m, 1}) : y;
    };
    check_same("affine_steps " + what, fast, ref, in);
    check_fd("affine_steps", what, fast, in, true);
  }
  for (int trial = 0; trial < 16; ++trial) {
    const std::size_t m = pick(g, {0, 1, 3}), k = pick(g, {0, 1, 1, 4}), T = pick(g, {0, 1, 1, 3}), B = pick(g, {0, 1, 1, 2, 5});
    const bool bias = g.integer(2), permuted = g.integer(2);
    const std::string what = "W (" + std::to_string(m) + ", " + std::to_string(k) + ") x (" + std::to_string(T) + ", " +
                             std::to_string(k) + ", " + std::to_string(B) + ")" + (bias ? " bias" : "") +
                             (permuted ? " x a permute" : "");
    CAPTURE(what);
    // x either a leaf or a permute of a (k, T, B) leaf (its values reordered, as a layer's input is).
    std::vector<Tensor> in{leaf({m, k}, g), permuted ? leaf({k, T, B}, g) : leaf({T, k, B}, g)};
    if (bias) in.push_back(leaf({m, 1}, g));
    const Fn fast = [&](const std::vector<Tensor>& v) {
      const Tensor x = permuted ? permute(v[1], {1, 0, 2}) : v[1];
      return affine_seq(v[0], x, bias ? v[2] : Tensor());
    };
    const Fn ref = [&](const std::vector<Tensor>& v) {
      const Tensor x = permuted ? permute(v[1], {1, 0, 2}) : v[1];
      const Tensor y = matmul(v[0], reshape(permute(x, {1, 0, 2}), {k, T * B}));
      return bias ? y + v[2] : y;
    };
    check_same("affine_seq " + what, fast, ref, in);
    if (m * k * T * B > 0) check_fd("affine_seq", what, fast, in, true);
  }
}

// ---------------------------------------------------------------------------------------------
// matmul and the tiny GEMM's loops

TEST_CASE("audit s12: matmul on the tiny loops' shapes (k = 1, n = 1, m = 1, the cut at 512) in every transpose") {
  Generator g(1204);
  struct Mkn {
    std::size_t m, k, n, batch;
  };
  const std::vector<Mkn> shapes = {{4, 1, 5, 0}, {1, 1, 1, 0}, {6, 3, 1, 0}, {1, 7, 1, 0}, {1, 3, 6, 0},
                                   {8, 8, 8, 0}, {8, 9, 8, 0}, {17, 30, 1, 0}, {3, 1, 2, 1}, {2, 5, 1, 2},
                                   {0, 3, 2, 0}, {2, 0, 3, 0}, {2, 3, 0, 0}, {600, 1, 1, 0}};
  for (const Mkn& s : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const std::string what = "m " + std::to_string(s.m) + " k " + std::to_string(s.k) + " n " + std::to_string(s.n) +
                                 " batch " + std::to_string(s.batch) + (ta ? " aᵀ" : "") + (tb ? " bᵀ" : "");
        CAPTURE(what);
        Shape sa = ta ? Shape{s.k, s.m} : Shape{s.m, s.k}, sb = tb ? Shape{s.n, s.k} : Shape{s.k, s.n};
        if (s.batch) sa = Shape{s.batch, sa[0], sa[1]}, sb = Shape{s.batch, sb[0], sb[1]};
        const std::vector<Tensor> in{leaf(sa, g), leaf(sb, g)};
        const Fn f = [ta, tb](const std::vector<Tensor>& v) { return matmul(v[0], v[1], ta, tb); };
        // Reference: the product as a broadcast multiply and a sum (no GEMM anywhere).
        const Fn ref = [&](const std::vector<Tensor>& v) {
          const int r = s.batch ? 1 : 0;
          Tensor a = ta ? transpose(v[0]) : v[0];  // (…, m, k)
          Tensor b = tb ? transpose(v[1]) : v[1];  // (…, k, n)
          return sum(unsqueeze(a, r + 2) * unsqueeze(b, r), {r + 1});
        };
        check_same("matmul " + what, f, ref, in);
        if (s.m * s.k * s.n > 0 && s.m * s.k * s.n < 1000) check_fd("matmul", what, f, in, true);
      }
}

TEST_CASE("audit s12: matmul of one tensor with itself, and a product into a leaf used twice") {
  Generator g(1205);
  for (std::size_t m : {1, 3, 6})
    for (std::size_t k : {1, 2, 5}) {
      CAPTURE(m);
      CAPTURE(k);
      const std::vector<Tensor> in{leaf({m, k}, g)};
      const Fn aat = [](const std::vector<Tensor>& v) { return matmul(v[0], v[0], false, true); };
      const Fn ata = [](const std::vector<Tensor>& v) { return matmul(v[0], v[0], true, false); };
      const Fn both = [](const std::vector<Tensor>& v) {
        return sum(matmul(v[0], v[0], false, true)) * matmul(v[0], v[0], true, false);
      };
      check_fd("matmul", "A·Aᵀ", aat, in, true);
      check_fd("matmul", "Aᵀ·A", ata, in, true);
      check_fd("matmul", "Σ(A·Aᵀ)·Aᵀ·A", both, in, true);
    }
}

// ---------------------------------------------------------------------------------------------
// sums, index_select, gather, slices

TEST_CASE("audit s12: sum over axes of extent 1 (the 0 + x path) and mixed, keepdims or not, zero-size axes") {
  Generator g(1206);
  for (int trial = 0; trial < 30; ++trial) {
    Shape s;
    const std::size_t rank = 1 + g.integer(4);
    for (std::size_t d = 0; d < rank; ++d) s.push_back(pick(g, {1, 1, 2, 3, trial % 7 == 0 ? 0u : 4u}));
    std::vector<int> axes;
    const bool only_ones = g.integer(2);
    for (std::size_t d = 0; d < rank; ++d)
      if (only_ones ? s[d] == 1 : g.integer(2)) axes.push_back(g.integer(2) ? static_cast<int>(d) : static_cast<int>(d) - static_cast<int>(rank));
    const bool keep = g.integer(2);
    const std::string what = s.str() + " axes " + std::to_string(axes.size()) + (keep ? " keepdims" : "");
    CAPTURE(what);
    const std::vector<Tensor> in{leaf(s, g)};
    const Fn f = [axes, keep](const std::vector<Tensor>& v) { return sum(v[0], axes, keep); };
    // Reference: the same sum as a product with ones (a GEMM-free, fast-path-free route: one axis at a time).
    const Fn ref = [axes, keep, s](const std::vector<Tensor>& v) {
      Tensor y = v[0];
      std::vector<std::size_t> ax;
      for (int a : axes) ax.push_back(static_cast<std::size_t>(a < 0 ? a + static_cast<int>(s.ndim()) : a));
      std::sort(ax.begin(), ax.end());
      for (std::size_t a : ax) {
        Tensor acc = Tensor::zeros(with_dim(y.shape(), a, 1), float64);
        for (std::size_t i = 0; i < s[a]; ++i) acc = acc + slice(y, static_cast<int>(a), i, i + 1);
        y = acc;
      }
      if (keep) return y;
      Shape out;
      for (std::size_t d = 0; d < s.ndim(); ++d)
        if (!std::binary_search(ax.begin(), ax.end(), d)) out.push_back(s[d]);
      return reshape(y, out);
    };
    check_same("sum " + what, f, ref, in);
    if (s.numel() > 0) {
      const Fn sq = [f](const std::vector<Tensor>& v) { const Tensor y = f(v); return y * y; };
      check_fd("sum", what, sq, in, true);
    }
  }
}

TEST_CASE("audit s12: index_select along the last axis (a row at a time) and others, repeats, empty lists, large") {
  Generator g(1207);
  for (int trial = 0; trial < 24; ++trial) {
    Shape s;
    const std::size_t rank = 1 + g.integer(3);
    for (std::size_t d = 0; d < rank; ++d) s.push_back(pick(g, {1, 2, 3, 5}));
    if (trial % 5 == 4) s.push_back(1);  // trailing size-1 axes: the row-at-a-time path for another axis
    const int axis = trial % 3 == 0 ? static_cast<int>(g.integer(s.ndim())) : -1 - static_cast<int>(trial % 5 == 4);
    const std::size_t ax = static_cast<std::size_t>(axis < 0 ? axis + static_cast<int>(s.ndim()) : axis);
    Indices idx;
    const std::size_t count = pick(g, {0, 1, 2, 4, 7});
    for (std::size_t i = 0; i < count; ++i) idx.push_back(static_cast<std::int64_t>(g.integer(s[ax])));
    const std::string what = s.str() + " axis " + std::to_string(axis) + " " + std::to_string(count) + " indices";
    CAPTURE(what);
    const std::vector<Tensor> in{leaf(s, g)};
    const Fn f = [axis, idx](const std::vector<Tensor>& v) { return index_select(v[0], axis, idx); };
    // Reference: each index a slice, joined (a slice path and a concat, no index kernel).
    const Fn ref = [axis, ax, idx, s](const std::vector<Tensor>& v) {
      if (idx.empty()) return slice(v[0], axis, 0, 0);  // (…, 0, …)
      std::vector<Tensor> parts;
      for (std::int64_t i : idx) parts.push_back(slice(v[0], axis, static_cast<std::size_t>(i), static_cast<std::size_t>(i) + 1));
      return concat(parts, axis);
    };
    if (!idx.empty() || s.numel() > 0) check_same("index_select " + what, f, ref, in);
    if (!idx.empty()) {
      const Fn sq = [f](const std::vector<Tensor>& v) { const Tensor y = f(v); return y * y; };
      check_fd("index_select", what, sq, in, true);
    }
  }
  // Large enough to split across threads, in rows: the rows' joins must not shift an index.
  for (std::size_t rows : {1u, 7u, 3000u}) {
    CAPTURE(rows);
    const std::vector<Tensor> in{leaf({rows, 13}, g)};
    Indices idx;
    for (std::size_t i = 0; i < 11; ++i) idx.push_back(static_cast<std::int64_t>((5 * i + 2) % 13));
    const Fn f = [idx](const std::vector<Tensor>& v) { return index_select(v[0], 1, idx); };
    const Fn ref = [idx](const std::vector<Tensor>& v) {
      std::vector<Tensor> parts;
      for (std::int64_t i : idx) parts.push_back(slice(v[0], 1, static_cast<std::size_t>(i), static_cast<std::size_t>(i) + 1));
      return concat(parts, 1);
    };
    check_same("index_select large", f, ref, in, 0.0 + 1e-300);
  }
}

TEST_CASE("audit s12: gather, concat, stack, split, chunk, permute, reshape, broadcast_to on random shapes") {
  Generator g(1208);
  for (int trial = 0; trial < 12; ++trial) {
    Shape s;
    const std::size_t rank = 2 + g.integer(2);
    for (std::size_t d = 0; d < rank; ++d) s.push_back(pick(g, {1, 2, 3, 4}));
    const std::size_t ax = g.integer(rank);
    const std::string what = s.str() + " axis " + std::to_string(ax);
    CAPTURE(what);
    const std::vector<Tensor> in{leaf(s, g), leaf(s, g)};
    // gather with repeats along ax; index of x's shape but 3 along the axis.
    const Shape is = with_dim(s, ax, 3);
    Indices index(is.numel());
    for (std::size_t i = 0; i < index.size(); ++i) index[i] = static_cast<std::int64_t>(g.integer(s[ax]));
    const int a = static_cast<int>(ax);
    const Fn fg = [a, index, is](const std::vector<Tensor>& v) { return gather(v[0], a, index, is); };
    check_fd("gather", what, [fg](const std::vector<Tensor>& v) { const Tensor y = fg(v); return y * y; }, in, true);
    // concat of x, y, x (one tensor twice), a zero-size piece, chunk and split back, reordered.
    const Fn fc = [a, ax, s](const std::vector<Tensor>& v) {
      const Tensor empty = slice(v[1], a, 0, 0);
      const Tensor c = concat({v[0], empty, v[1], v[0]}, a);
      std::vector<Tensor> p = chunk(c, 2, a);
      std::vector<Tensor> q = split(c, {s[ax], 2 * s[ax]}, a);
      return concat({p.back(), q[0], p.front(), q[1]}, a) * concat({c, c}, a);
    };
    check_fd("concat/stack/split/chunk", what, fc, in, true);
    const Fn fs = [a](const std::vector<Tensor>& v) {
      const Tensor st = stack({v[0], v[1], v[0]}, a);
      return st * st;
    };
    check_fd("concat/stack/split/chunk", what + " stack", fs, in, true);
    // permute (a random order), reshape, broadcast_to a new leading axis and the size-1 axes at 2.
    std::vector<int> perm(rank);
    for (std::size_t i = 0; i < rank; ++i) perm[i] = static_cast<int>(i);
    for (std::size_t i = rank; i > 1; --i) std::swap(perm[i - 1], perm[g.integer(i)]);
    const Fn fp = [perm, s](const std::vector<Tensor>& v) {
      Shape target{2};
      for (std::size_t d : s) target.push_back(d == 1 ? 2 : d);
      const Tensor b = broadcast_to(v[0], target);
      const Tensor p = permute(v[1] * v[0], perm);
      return sum(b * b) * reshape(p, {p.numel()}) + reshape(permute(v[1], perm), {s.numel()}) * reshape(v[1], {s.numel()});
    };
    check_fd("permute/reshape/broadcast_to", what, fp, in, true);
  }
}

TEST_CASE("audit s12: slices as views and as copies, of views and permutes, overlapping, empty, into one adjoint") {
  Generator g(1209);
  for (int trial = 0; trial < 20; ++trial) {
    Shape s;
    const std::size_t rank = 1 + g.integer(3);
    for (std::size_t d = 0; d < rank; ++d) s.push_back(pick(g, {1, 1, 2, 4, 6}));
    const std::size_t ax = g.integer(rank), n = s[ax];
    const std::size_t start = g.integer(n + 1), stop = start + g.integer(n - start + 1), step = 1 + g.integer(3);
    const int a = static_cast<int>(ax);
    const std::string what = s.str() + " [" + std::to_string(start) + ":" + std::to_string(stop) + ":" +
                             std::to_string(step) + "] along " + std::to_string(ax);
    CAPTURE(what);
    const std::vector<Tensor> in{leaf(s, g)};
    // Two overlapping slices of x and of tanh(x) (an intermediate that is also used whole): their
    // regions land in one adjoint, in place, next to the whole-tensor contribution.
    const Fn f = [=](const std::vector<Tensor>& v) {
      const Tensor t = tanh(v[0]);
      const Tensor p = slice(t, a, start, stop, step), q = slice(v[0], a, start, stop, step);
      const Tensor r = slice(t, a, 0, n), w = slice(v[0], a, start, stop);  // the whole axis: x itself
      return concat({reshape(p * q, {p.numel()}), reshape(r * t, {r.numel()}), reshape(w, {w.numel()}) * 2.0}, 0);
    };
    // Reference: slices by index_select (no view, no region add).
    const Fn ref = [=](const std::vector<Tensor>& v) {
      Indices idx, idx1;
      for (std::size_t i = start; i < stop; i += step) idx.push_back(static_cast<std::int64_t>(i));
      for (std::size_t i = start; i < stop; ++i) idx1.push_back(static_cast<std::int64_t>(i));
      const Tensor t = tanh(v[0]);
      const Tensor p = index_select(t, a, idx), q = index_select(v[0], a, idx), w = index_select(v[0], a, idx1);
      return concat({reshape(p * q, {p.numel()}), reshape(t * t, {t.numel()}), reshape(w, {w.numel()}) * 2.0}, 0);
    };
    check_same("slice " + what, f, ref, in);
    if (s.numel() > 0) check_fd("slice", what, f, in, true);
    // A slice of a permute and of a reshape (a view of a view), along the leading axis (a view again).
    const Fn f2 = [=](const std::vector<Tensor>& v) {
      std::vector<int> rev(rank);
      for (std::size_t i = 0; i < rank; ++i) rev[i] = static_cast<int>(rank - 1 - i);
      const Tensor p = permute(v[0], rev);
      const Tensor r = reshape(v[0], {s.numel()});
      const Tensor sp = slice(p, 0, 0, p.dim(0) > 1 ? 1 : p.dim(0));
      const Tensor sr = slice(slice(r, 0, 0, r.dim(0) / 2 + (r.dim(0) % 2)), 0, 0, r.dim(0) / 4);
      return concat({reshape(sp * sp, {sp.numel()}), sr * sr}, 0);
    };
    if (s.numel() > 0) check_fd("slice", what + " of views", f2, in, true);
  }
}

TEST_CASE("audit s12: element-wise ops split across threads give the bits of one thread, and pass gradcheck") {
  Generator g(1210);
  // Unary ops on lengths around the split points and the vector tails (1 … 40, and long).
  struct Unary {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    double lo, hi;  // the domain (away from kinks and edges)
    bool second;
  };
  const std::vector<Unary> ops = {
      {"tanh", [](const Tensor& x) { return tanh(x); }, -4, 4, true},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, -6, 6, true},
      {"exp", [](const Tensor& x) { return exp(x); }, -3, 3, true},
      {"log", [](const Tensor& x) { return log(x); }, 0.3, 3, true},
      {"log1p", [](const Tensor& x) { return log1p(x); }, -0.5, 3, true},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, 0.3, 3, true},
      {"abs", [](const Tensor& x) { return abs(x); }, 0.2, 2, false},
      {"relu", [](const Tensor& x) { return relu(x) + relu(-x - 1.0); }, -0.7, 2, false},
      {"clamp", [](const Tensor& x) { return clamp(x, -0.5, 0.5) * x; }, -0.4, 0.4, true},
      {"pow", [](const Tensor& x) { return pow(x, 2.5) + pow(x, x); }, 0.3, 2, true},
  };
  for (const Unary& op : ops)
    for (std::size_t n : {1u, 3u, 7u, 8u, 15u, 16u, 17u, 31u, 33u, 40u}) {
      const std::string what = std::string(op.name) + " n " + std::to_string(n);
      CAPTURE(what);
      const std::vector<Tensor> in{Tensor::uniform({n}, op.lo, op.hi, g, float64).set_requires_grad()};
      check_fd(op.name, what, [&op](const std::vector<Tensor>& v) { return op.f(v[0]); }, in, op.second && n < 20);
    }
  // Long: the same bits at 1, 2 and 3 threads, value and gradient, and a few gradcheck'd elements.
  for (const Unary& op : ops) {
    CAPTURE(op.name);
    const Tensor x = Tensor::uniform({20011}, op.lo, op.hi, g, float64).set_requires_grad();
    std::vector<double> v1, g1;
    for (int threads : {1, 2, 3}) {
      Threads t(threads);
      const std::vector<Tensor> gr = backward_grads([&op](const std::vector<Tensor>& v) { return op.f(v[0]); }, {x});
      Tensor y;
      {
        NoGradGuard no;
        y = op.f(x);
      }
      if (threads == 1) {
        v1 = values(y), g1 = values(gr[0]);
        // the gradient at 1 thread, against central differences at a few elements
        for (std::size_t i : {0u, 9999u, 16383u, 20010u}) {
          const double eps = 1e-6;
          Tensor xp = x.detach(), xm = x.detach();
          std::vector<double> a = values(xp), b = values(xm);
          a[i] += eps, b[i] -= eps;
          NoGradGuard no;
          const Tensor w = weights({20011});
          const double num = (sum(op.f(Tensor::from_vector(a, {20011}, float64)) * w).item() -
                              sum(op.f(Tensor::from_vector(b, {20011}, float64)) * w).item()) / (2 * eps);
          CHECK_MESSAGE(std::abs(num - g1[i]) <= 1e-5 + 1e-3 * std::abs(num), op.name << " element " << i);
        }
      } else {
        CHECK_MESSAGE(values(y) == v1, op.name << ": value at " << threads << " threads differs from one thread's");
        CHECK_MESSAGE(values(gr[0]) == g1, op.name << ": gradient at " << threads << " threads differs from one thread's");
      }
    }
  }
}

TEST_CASE("audit s12: broadcasting binary ops, where, max on random shapes, operands repeated, zero-size") {
  Generator g(1211);
  for (int trial = 0; trial < 16; ++trial) {
    Shape s;
    const std::size_t rank = 1 + g.integer(3);
    for (std::size_t d = 0; d < rank; ++d) s.push_back(pick(g, {1, 2, 3, 5}));
    Shape t = s;
    for (std::size_t d = 0; d < t.ndim(); ++d)
      if (g.integer(2)) t[d] = 1;
    t = Shape(t.begin() + g.integer(t.ndim() + 1), t.end());
    const std::string what = s.str() + " with " + t.str();
    CAPTURE(what);
    const std::vector<Tensor> in{leaf(s, g), Tensor::uniform(t, 0.5, 2, g, float64).set_requires_grad()};
    const Tensor cond = gt(Tensor::uniform(t, 0, 1, g, float64), 0.5);
    const Fn f = [cond](const std::vector<Tensor>& v) {
      const Tensor& a = v[0];
      const Tensor& b = v[1];
      return a * a + a / b - b * b + (a - b) * (b - a) + b / b + pow(b, b) + where(cond, a, b) * where(cond, b, b) +
             a * 0.5 - 2.0 / b;
    };
    check_fd("broadcast binary / where", what, f, in, true);
    const int axis = static_cast<int>(g.integer(rank));
    const Fn fm = [axis](const std::vector<Tensor>& v) { return max(v[0] * v[1], axis, true) * max(v[0], axis); };
    check_fd("max", what, fm, in, false);
  }
  // Zero-size operands broadcast against non-empty ones: empty results, no gradient reaching the other.
  const Tensor a = leaf({0, 3}, g), b = leaf({1, 3}, g);
  Tape tape;
  const Tensor y = a * b + b;
  CHECK(y.shape() == Shape{0, 3});
  backward(sum(y));
  CHECK(b.grad().to_vector() == std::vector<double>{0, 0, 0});
}

TEST_CASE("audit s12: large shapes split across threads equal their compositions at 1, 2 and 3 threads") {
  Generator g(1216);
  // affine's prefill (base + bias, a window) splits by rows past 16,384 elements; the product past 2^20.
  {
    const std::vector<Tensor> in{leaf({150, 40}, g), leaf({40, 120}, g), leaf({150}, g), leaf({150, 133}, g)};
    const Fn f = [](const std::vector<Tensor>& v) { return affine(v[0], v[1], v[2], v[3], 9); };
    const Fn ref = [](const std::vector<Tensor>& v) {
      return matmul(v[0], v[1]) + reshape(v[2], {150, 1}) + slice(v[3], 1, 9, 129);
    };
    check_same("large affine window", f, ref, in, 1e-12);
    const Fn f2 = [](const std::vector<Tensor>& v) { return affine(v[0], v[1], Tensor(), slice(v[3], 1, 0, 120)); };
    const Fn ref2 = [](const std::vector<Tensor>& v) { return matmul(v[0], v[1]) + slice(v[3], 1, 0, 120); };
    check_same("large affine base (a sliced copy)", f2, ref2, in, 1e-12);
  }
  {
    const std::vector<Tensor> in{leaf({64, 48}, g), leaf({7, 48, 50}, g), leaf({64, 1}, g)};
    const Fn f = [](const std::vector<Tensor>& v) { return affine_seq(v[0], v[1], v[2]); };
    const Fn ref = [](const std::vector<Tensor>& v) {
      return matmul(v[0], reshape(permute(v[1], {1, 0, 2}), {48, 350})) + v[2];
    };
    check_same("large affine_seq", f, ref, in, 1e-12);
  }
  // Slices (views and copies), sum over extent-1 axes, index_select/gather/concat on many elements.
  {
    const std::vector<Tensor> in{leaf({1, 90, 1, 300}, g)};
    const Fn f = [](const std::vector<Tensor>& v) {
      const Tensor a = slice(v[0], 1, 5, 85);      // a view (only a size-1 axis before)
      const Tensor b = slice(v[0], 3, 7, 290, 3);  // a copy
      const Tensor c = sum(v[0], {0, 2});          // extent-1 axes only
      const Tensor d = index_select(v[0], 3, Indices{299, 0, 5, 5, 17});
      const Tensor e = index_select(v[0], 1, Indices{3, 3, 89, 0});
      return sum(a * a) + sum(b * b) * sum(c * c) + sum(d * d) * sum(e) + sum(concat({a, a}, 3) * 0.5);
    };
    const Fn ref = [](const std::vector<Tensor>& v) {
      const Tensor x = reshape(v[0], {90, 300});
      Indices ia, ib;
      for (std::int64_t i = 5; i < 85; ++i) ia.push_back(i);
      for (std::int64_t i = 7; i < 290; i += 3) ib.push_back(i);
      const Tensor a = gather(x, 0, [&] {
        Indices idx;
        for (std::int64_t i : ia)
          for (int j = 0; j < 300; ++j) idx.push_back(i);
        return idx;
      }(), Shape{80, 300});
      const Tensor b = permute(index_select(permute(x, {1, 0}), 0, ib), {1, 0});
      const Tensor d = permute(index_select(permute(x, {1, 0}), 0, Indices{299, 0, 5, 5, 17}), {1, 0});
      const Tensor e = index_select(x, 0, Indices{3, 3, 89, 0});
      return sum(a * a) + sum(b * b) * sum(x * x) + sum(d * d) * sum(e) + sum(a);
    };
    check_same("large slices and selects", f, ref, in, 1e-11);
  }
}

TEST_CASE("audit s12: a small weight used twice (k = 1 and n = 1 products added onto .grad() with beta 1)") {
  Generator g(1217);
  for (std::size_t m : {1u, 3u, 9u})
    for (std::size_t k : {1u, 2u, 6u}) {
      CAPTURE(m);
      CAPTURE(k);
      // Two vector affines of one W (outer products into dW, the second onto the first), and one
      // column x used by two matrices (n = 1 products Wᵀ·dy into dx, the second onto the first).
      const std::vector<Tensor> in{leaf({m, k}, g), leaf({k}, g), leaf({k}, g), leaf({m + 1, k}, g), leaf({k, 1}, g)};
      const Fn f = [](const std::vector<Tensor>& v) {
        const Tensor a = affine(v[0], v[1]), b = affine(v[0], v[2], Tensor(), a);
        const Tensor c = matmul(v[3], v[4]), d = affine(v[0], v[4]), e = matmul(v[0], v[4], false, false);
        return concat({b * a, reshape(c, {c.numel()}), reshape(d * e, {d.numel()})}, 0);
      };
      const Fn ref = [](const std::vector<Tensor>& v) {
        auto mv = [](const Tensor& W, const Tensor& x) { return sum(W * reshape(x, {1, x.numel()}), {1}); };
        const Tensor a = mv(v[0], v[1]), b = mv(v[0], v[2]) + a;
        const Tensor c = mv(v[3], v[4]), d = mv(v[0], v[4]);
        return concat({b * a, c, d * d}, 0);
      };
      check_same("small weight used twice", f, ref, in);
      check_fd("matmul", "small weight used twice", f, in, true);
    }
}

TEST_CASE("audit s12: cast float64 → float32 → float64 on random shapes and threads, and float32 gradcheck") {
  Generator g(1212);
  GradcheckOptions o;
  o.eps = 1e-3;
  for (std::size_t n : {1u, 5u, 17u, 20000u}) {
    CAPTURE(n);
    const std::vector<Tensor> in{leaf({n}, g)};
    const Fn f = [](const std::vector<Tensor>& v) { return cast(cast(v[0] * v[0], float32) * 2.0f, float64); };
    if (n < 100) check_fd("cast", "n " + std::to_string(n), f, in, false, o);
    std::vector<double> g1;
    for (int threads : {1, 2, 3}) {
      Threads t(threads);
      const std::vector<double> gr = values(backward_grads(f, in)[0]);
      if (threads == 1) g1 = gr;
      else CHECK(gr == g1);
    }
  }
  // A float32 leaf through the affine and tanh fast paths: gradcheck promotes it and compares.
  const Tensor W = Tensor::randn({5, 3}, g, float32).set_requires_grad(), x = Tensor::randn({3, 2}, g, float32).set_requires_grad();
  const GradcheckReport r = gradcheck([](const std::vector<Tensor>& v) { return tanh(affine(v[0], v[1])); }, {W, x});
  CHECK_MESSAGE(r.ok(), r.str());
  CHECK(W.dtype() == float32);
}

// ---------------------------------------------------------------------------------------------
// The sweep: gathered weight-gradient products, retain, zero_grad

namespace {

// A 30-step recurrence using W, U and b at every step in the ways a cell does (affine with a base
// from another affine, a plain matmul every third step, a window of a wide projection), plus a
// regularizer on W, the loss Σ over steps of asymmetric weights.
Tensor recurrence(const std::vector<Tensor>& v, const Tensor& xs, std::size_t steps) {
  const Tensor &W = v[0], &U = v[1], &b = v[2];
  const std::size_t H = W.dim(0), B = xs.dim(2);
  const Tensor proj = affine_seq(U, xs, b);  // (H, steps·B)
  Tensor h = Tensor::zeros({H, B}, float64);
  Tensor loss = sum(W * W) * 0.01;
  for (std::size_t t = 0; t < steps; ++t) {
    if (t % 3 == 2) h = tanh(matmul(W, h) + slice(proj, 1, t * B, t * B + B));
    else if (t % 3 == 1) h = tanh(affine(W, h, b, proj, t * B));
    else h = tanh(affine(W, h, b, affine(U, reshape(slice(xs, 0, t, t + 1), {xs.dim(1), B}))));
    loss = loss + sum(h * weights(h.shape(), static_cast<std::uint32_t>(t)));
  }
  return loss;
}

}  // namespace

TEST_CASE("audit s12: a weight used at every step of 30: gathered products (2 threads) equal per-step ones, retain and zero_grad") {
  Generator g(1213);
  const std::size_t H = 16, I = 5, B = 8, steps = 30;
  const std::vector<Tensor> in{leaf({H, H}, g, 0.3), leaf({H, I}, g, 0.4), leaf({H}, g, 0.1)};
  const Tensor xs = Tensor::randn({steps, I, B}, g, float64);
  const Fn f = [&](const std::vector<Tensor>& v) { return recurrence(v, xs, steps); };
  // Finite differences (grad(): products run where they are).
  {
    const GradcheckReport r = gradcheck(f, in);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  auto run = [&](int threads, int times, bool zero_between) {
    Threads t(threads);
    for (Tensor x : in) x.zero_grad(true);
    Tape tape;
    const Tensor L = f(in);
    for (int k = 0; k < times; ++k) {
      if (zero_between)
        for (Tensor x : in) x.zero_grad();
      backward(L, Tensor(), SweepOptions{.retain = k + 1 < times});
    }
    std::vector<Tensor> gs;
    for (const Tensor& x : in) gs.push_back(x.grad().detach());
    return gs;
  };
  const std::vector<Tensor> one = run(1, 1, false);
  CHECK(last_sweep_stats().products_deferred == 0);
  const std::vector<Tensor> two = run(2, 1, false);
  CHECK(last_sweep_stats().products_deferred > 0);  // the gathered path ran
  const std::vector<Tensor> three = run(3, 1, false);
  std::vector<Tensor> by_grad;
  {
    Tape tape;
    by_grad = grad({f(in)}, in);
  }
  for (std::size_t i = 0; i < in.size(); ++i) {
    CAPTURE(i);
    CHECK(rel_diff(two[i], one[i]) < 1e-12);
    CHECK(rel_diff(three[i], one[i]) < 1e-12);
    CHECK(rel_diff(by_grad[i], one[i]) < 1e-12);
  }
  // Two backward calls (retain) accumulate twice the gradient; zero_grad between gives one's.
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    const std::vector<Tensor> twice = run(threads, 2, false), zeroed = run(threads, 2, true);
    for (std::size_t i = 0; i < in.size(); ++i) {
      CAPTURE(i);
      CHECK(rel_diff(twice[i], one[i] * 2.0) < 1e-12);
      CHECK(rel_diff(zeroed[i], one[i]) < 1e-12);
    }
  }
  // create_graph at 2 threads (products recorded, nothing gathered): the same first gradient.
  {
    Threads t(2);
    for (Tensor x : in) x.zero_grad(true);
    Tape tape;
    backward(f(in), Tensor(), SweepOptions{.create_graph = true});
    for (std::size_t i = 0; i < in.size(); ++i) CHECK(rel_diff(in[i].grad(), one[i]) < 1e-12);
    for (Tensor x : in) x.zero_grad(true);
  }
}

TEST_CASE("audit s12: .grad() accumulates over retained backward calls through every in-place path, zero_grad resets") {
  Generator g(1214);
  // Each path: a product into .grad() (matmul, affine), a slice's region, a window of a base, a plain add.
  const std::vector<Tensor> in{leaf({6, 5}, g), leaf({5, 40}, g), leaf({6, 50}, g), leaf({6}, g)};
  const Fn f = [](const std::vector<Tensor>& v) {
    const Tensor a = affine(v[0], v[1], v[3], v[2], 7);
    const Tensor m = matmul(v[0], slice(v[1], 1, 3, 9));
    return sum(a * a) + sum(m * slice(v[2], 1, 0, 6)) + sum(slice(v[2], 0, 2, 5, 2) * 3.0);
  };
  check_fd("accumulation paths", "affine window + matmul of a slice + slices", f, in, true);
  for (int threads : {1, 2}) {
    CAPTURE(threads);
    Threads t(threads);
    std::vector<Tensor> first;
    for (Tensor x : in) x.zero_grad(true);
    Tape tape;
    const Tensor L = f(in);
    backward(L, Tensor(), SweepOptions{.retain = true});
    for (const Tensor& x : in) first.push_back(x.grad().detach());
    backward(L, Tensor(), SweepOptions{.retain = true});
    for (std::size_t i = 0; i < in.size(); ++i) CHECK(rel_diff(in[i].grad(), first[i] * 2.0) < 1e-14);
    for (Tensor x : in) x.zero_grad();
    backward(L);
    for (std::size_t i = 0; i < in.size(); ++i) CHECK(rel_diff(in[i].grad(), first[i]) < 1e-14);
    for (Tensor x : in) x.zero_grad(true);
  }
}

TEST_CASE("audit s12: grad() of a tensor listed twice among the inputs gives its gradient at both places") {
  // As torch.autograd.grad(y, [x, x]): each listing gets dy/dx. (It used to come back only at the last
  // listing: the first was "not reachable", and gradcheck of f(x, x) with x passed twice blamed the op.)
  const Tensor x = Tensor::from_vector({1.0, -2.0, 0.5}, {3}, float64).set_requires_grad();
  const Tensor W = Tensor::from_vector({1.0, 2.0, -1.0, 0.5, 3.0, 1.0}, {2, 3}, float64).set_requires_grad();
  {
    Tape tape;
    const std::vector<Tensor> g = grad({sum(x * x * W)}, {x, W, x});
    REQUIRE(g.size() == 3);
    REQUIRE(g[0].defined());
    REQUIRE(g[2].defined());
    CHECK(g[0].to_vector() == g[2].to_vector());
    CHECK(g[0].to_vector() == std::vector<double>{2 * 1.0 * 1.5, 2 * -2.0 * 5.0, 2 * 0.5 * 0.0});
  }
  {
    Tape tape;  // create_graph: both listings differentiable
    const std::vector<Tensor> g = grad({sum(x * x * x)}, {x, x}, {}, SweepOptions{.create_graph = true});
    REQUIRE(g[0].defined());
    REQUIRE(g[1].defined());
    const std::vector<Tensor> h = grad({sum(g[0] + g[1])}, {x});
    CHECK(h[0].to_vector() == std::vector<double>{12 * 1.0, 12 * -2.0, 12 * 0.5});
  }
  for (const Fn& f : {Fn([](const std::vector<Tensor>& v) { return v[0] * v[1]; }),
                      Fn([](const std::vector<Tensor>& v) { return affine(v[0], v[1]); })}) {
    const Tensor A = Tensor::from_vector({1.0, -2.0, 0.5, 0.25}, {2, 2}, float64).set_requires_grad();
    check_fd("grad of a tensor listed twice", "f(A, A)", f, {A, A}, true);
  }
}

TEST_CASE("audit s12: a gradient penalty (create_graph, then a plain backward that gathers) and freed unread values") {
  Generator g(1218);
  const std::size_t H = 12, B = 6, steps = 5;
  const std::vector<Tensor> in{leaf({H, H}, g, 0.3), leaf({H, 3}, g, 0.4), leaf({H}, g, 0.1)};
  const Tensor xs = Tensor::randn({steps, 3, B}, g, float64);
  // ‖∂L/∂W‖² + ‖∂L/∂U‖² of the recurrence: its gradient runs through the first sweep's recorded
  // products, and backward() gathers the second sweep's products at 2 threads.
  const Fn penalty = [&](const std::vector<Tensor>& v) {
    EnableGradGuard recording;
    const std::vector<Tensor> gr = grad({recurrence(v, xs, steps)}, {v[0], v[1]}, {}, SweepOptions{.create_graph = true});
    return sum(gr[0] * gr[0]) + sum(gr[1] * gr[1]);
  };
  check_fd("gradient penalty", "‖∇L‖² of 5 steps", penalty, in, false);
  // Values no backward reads freed before the sweep (at any tape size): the same gradients.
  const std::vector<Tensor> kept = backward_grads([&](const std::vector<Tensor>& v) { return recurrence(v, xs, steps); }, in);
  for (int threads : {1, 2}) {
    Threads t(threads);
    DropAtAnySize drop;
    const std::vector<Tensor> dropped = backward_grads([&](const std::vector<Tensor>& v) { return recurrence(v, xs, steps); }, in);
    for (std::size_t i = 0; i < in.size(); ++i) CHECK(rel_diff(dropped[i], kept[i]) < 1e-12);
  }
}

TEST_CASE("audit s12: gathered products in every transpose case, into a weight and into an input used at every step") {
  Generator g(1219);
  const std::size_t steps = 20;
  // P (16, 12) and Q (12, 16) leaves, x (12, 8) a leaf input read at every step; constants per step.
  const std::vector<Tensor> in{leaf({16, 12}, g, 0.3), leaf({12, 16}, g, 0.3), leaf({12, 8}, g)};
  std::vector<Tensor> X, Z;
  for (std::size_t t = 0; t < steps; ++t) X.push_back(Tensor::randn({12, 8}, g, float64)), Z.push_back(Tensor::randn({8, 12}, g, float64));
  const Fn f = [&](const std::vector<Tensor>& v) {
    const Tensor &P = v[0], &Q = v[1], &x = v[2];
    Tensor loss = Tensor::scalar(0.0, float64);
    for (std::size_t t = 0; t < steps; ++t) {
      const Tensor a = tanh(matmul(P, X[t] + x));               // dP: dC·(X + x)ᵀ; dx: Pᵀ·dC
      const Tensor b = tanh(matmul(Q, X[t] * x, true, false));  // dQ: (X⊙x)·dCᵀ
      const Tensor c = tanh(matmul(Z[t], P, false, true));      // dP: dCᵀ·Z
      const Tensor d = tanh(matmul(X[t], P, true, true));       // dP: dCᵀ·Xᵀ
      const Tensor e = tanh(affine(P, x, Tensor(), a));         // dx: Pᵀ·dy (an input's product)
      loss = loss + sum(a * b) + sum(c * d * 0.5) + sum(e * weights(e.shape(), static_cast<std::uint32_t>(t)));
    }
    return loss;
  };
  check_fd("gathered products", "20 steps, every transpose case", f, in, false);
  Threads t(2);
  backward_grads(f, in);
  CHECK(last_sweep_stats().products_deferred > 0);
  CHECK(last_sweep_stats().batched_gemms > 0);
}

TEST_CASE("audit s12: leaves that are views of one storage, each gathered into its own .grad()") {
  Generator g(1221);
  const Tensor base = Tensor::randn({20, 16}, g, float64) * 0.3;
  Tensor W, V;
  {
    NoGradGuard no;  // views of base's values, made leaves: W rows 2…17, V rows 0…15 (overlapping)
    W = slice(base, 0, 2, 18);
    V = slice(base, 0, 0, 16);
  }
  W.set_requires_grad();
  V.set_requires_grad();
  REQUIRE(W.shares_storage(V));
  const Tensor xs = Tensor::randn({12, 16, 8}, g, float64);
  const Fn f = [&](const std::vector<Tensor>& v) {
    Tensor h = Tensor::zeros({16, 8}, float64), loss = Tensor::scalar(0.0, float64);
    for (std::size_t t = 0; t < 12; ++t) {
      h = tanh(affine(v[0], h, Tensor(), matmul(v[1], reshape(slice(xs, 0, t, t + 1), {16, 8}))));
      loss = loss + sum(h * weights(h.shape(), static_cast<std::uint32_t>(t)));
    }
    return loss;
  };
  std::vector<Tensor> one;
  for (int threads : {1, 2, 3}) {
    Threads t(threads);
    const std::vector<Tensor> gs = backward_grads(f, {W, V});
    if (threads == 1) one = gs;
    else
      for (std::size_t i = 0; i < 2; ++i) CHECK(rel_diff(gs[i], one[i]) < 1e-12);
    if (threads == 2) CHECK(last_sweep_stats().products_deferred > 0);
  }
  // grad() (no gathering) agrees, and base's values are untouched by the sweeps.
  std::vector<Tensor> by_grad;
  {
    Tape tape;
    by_grad = grad({f({W, V}) * weights(Shape{})}, {W, V});  // backward_grads' scalarization
  }
  for (std::size_t i = 0; i < 2; ++i) CHECK(rel_diff(by_grad[i], one[i]) < 1e-12);
  CHECK(rel_diff(slice(base, 0, 2, 18), W) == 0.0);
}

// ---------------------------------------------------------------------------------------------
// The vector tanh, sigmoid, exp at this process's width (run with REWIND_NO_AVX512 / REWIND_NO_AVX2
// for the others), their tails and the split points.

TEST_CASE("audit s12: tanh, sigmoid, exp values and gradients against the C library at this SIMD width") {
  Generator g(1215);
  CAPTURE(kernels::simd::level());
  for (std::size_t n : {1u, 4u, 9u, 16u, 23u, 64u, 4099u, 20001u}) {
    CAPTURE(n);
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = g.uniform(-30, 30) * (i % 3 == 0 ? 0.05 : 1.0);
    const Tensor x = Tensor::from_vector(v, {n}, float64).set_requires_grad();
    for (int which = 0; which < 3; ++which) {
      Tape tape;
      const Tensor y = which == 0 ? tanh(x) : which == 1 ? sigmoid(x) : exp(x * 0.5);
      const std::vector<double> yv = y.to_vector();
      backward(sum(y * y));
      const std::vector<double> gv = x.grad().to_vector();
      double worst_value = 0, worst_grad = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const double e = which == 0 ? std::tanh(v[i]) : which == 1 ? 1 / (1 + std::exp(-v[i])) : std::exp(v[i] * 0.5);
        const double d = which == 0 ? 1 - e * e : which == 1 ? e * (1 - e) : 0.5 * e;
        worst_value = std::max(worst_value, std::abs(yv[i] - e) / std::max(std::abs(e), 1e-300));
        // 1 − y² near |y| = 1 is quantized at 2⁻⁵³ (either formula): an absolute floor of a few ulps of 1.
        worst_grad = std::max(worst_grad, std::abs(gv[i] - 2 * e * d) / (std::abs(2 * e * d) + 1e-3));
      }
      CHECK_MESSAGE(worst_value < 1e-13, "op " << which << " value rel err " << worst_value);
      CHECK_MESSAGE(worst_grad < 1e-12, "op " << which << " gradient rel err " << worst_grad);
      Tensor(x).zero_grad(true);
    }
  }
}

TEST_CASE("audit s12: pow and log at special values equal std::pow and std::log in every lane, and pow's gradient at 0") {
  // xsimd's batch pow gave 0ᵖ = 0 for p ≤ 0 (0⁰ = 0, 0⁻¹ = 0), x⁰ = NaN for x = ±inf or NaN, 1^±inf = NaN,
  // and both pow and log flushed or misread subnormal x (log(1e-310) = −746.5, not −713.8) — in the
  // lanes of whole batches only: the same x gave another value as one of the last n mod width elements.
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> xs = {0.0, -0.0, 1.0, -1.0, -2.0, 2.0, inf, -inf, nan, 0.5, 1e-310, 4e-320, 3.0};
  const std::vector<double> ps = {0.0, -0.0, 1.0, -1.0, 2.0, 3.0, -3.0, 0.5, -0.5, inf, -inf, nan, 2.5};
  // Special values exactly (the sign of a NaN aside); ordinary ones within the few ulps the batch
  // formulas differ from std:: by (kernels/simd.hpp).
  auto same = [](double a, double b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    if (std::isinf(b) || b == 0) return a == b && std::signbit(a) == std::signbit(b);
    return std::abs(a - b) <= 1e-6 * std::abs(b);
  };
  std::vector<double> v;  // every special value in every lane position of the batches, and in the tail
  for (std::size_t r = 0; r < 17; ++r) v.insert(v.end(), xs.begin(), xs.end());
  for (Dtype dt : {float64, float32}) {
    CAPTURE(dtype_name(dt));
    auto round = [dt](double a) { return dt == float32 ? static_cast<double>(static_cast<float>(a)) : a; };
    const Tensor x = Tensor::from_vector(v, {v.size()}, dt);
    const std::vector<double> xv = x.to(float64).to_vector();
    for (double p : ps) {
      const std::vector<double> y = pow(x, p).to(float64).to_vector();
      for (std::size_t i = 0; i < v.size(); ++i) {
        const double e = dt == float32 ? std::pow(static_cast<float>(xv[i]), static_cast<float>(p)) : std::pow(xv[i], p);
        CHECK_MESSAGE(same(y[i], e), "pow(" << xv[i] << ", " << p << ") = " << y[i] << ", std::pow " << e << " at " << i);
      }
      // the tensor exponent, same shape (simd::pow of two runs) and broadcast (std::pow)
      const std::vector<double> yt = pow(x, Tensor::full({v.size()}, p, dt)).to(float64).to_vector();
      for (std::size_t i = 0; i < v.size(); ++i) CHECK(same(yt[i], y[i]));
    }
    const std::vector<double> l = log(x).to(float64).to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) {
      const double e = dt == float32 ? std::log(static_cast<float>(xv[i])) : std::log(xv[i]);
      CHECK_MESSAGE(same(l[i], round(e)), "log(" << xv[i] << ") = " << l[i] << ", std::log " << e << " at " << i);
    }
  }
  // d/dx x¹ = 1 at x = 0 (from p·x⁰), and x⁰ = 1 there.
  const Tensor z = Tensor::zeros({20}, float64).set_requires_grad();
  Tape tape;
  CHECK(pow(z, 0.0).to_vector() == std::vector<double>(20, 1.0));
  backward(sum(pow(z, 1.0)));
  CHECK(z.grad().to_vector() == std::vector<double>(20, 1.0));
}

TEST_CASE("audit s12: pow's gradients at a zero base follow PyTorch's rules (FunctionsManual.cpp pow_backward*)") {
  // d/dx x⁰ = 0 everywhere (x⁰ ≡ 1), not 0·x⁻¹ = 0·inf = NaN at x = 0: pow_backward returns zeros for
  // exponent 0, pow_backward_self masks exponent == 0; d/dp xᵖ = xᵖ·ln x is 0 where x = 0 and p ≥ 0
  // (pow_backward_exponent), not 0·(−inf) = NaN — the finite differences there are 0 too.
  const Tensor x = Tensor::from_vector({0.0, 0.0, 0.0, 2.0, 0.0}, {5}, float64).set_requires_grad();
  const Tensor p = Tensor::from_vector({0.0, 1.0, 2.5, 0.0, -1.0}, {5}, float64).set_requires_grad();
  {
    Tape tape;
    backward(sum(pow(x, 0.0)));
    CHECK(x.grad().to_vector() == std::vector<double>(5, 0.0));
    Tensor(x).zero_grad(true);
  }
  {
    Tape tape;
    backward(sum(pow(x, p)));
    const std::vector<double> dx = x.grad().to_vector(), dp = p.grad().to_vector();
    // dx: p·x^(p−1): 0 (p = 0), 1·0⁰ = 1, 2.5·0^1.5 = 0, 0 (p = 0), −1·0⁻² = −inf
    CHECK(dx[0] == 0.0);
    CHECK(dx[1] == 1.0);
    CHECK(dx[2] == 0.0);
    CHECK(dx[3] == 0.0);
    CHECK(dx[4] == -std::numeric_limits<double>::infinity());
    // dp: xᵖ·ln x: 0 at x = 0 with p ≥ 0, 2⁰·ln 2 at x = 2, and inf·(−inf) = −inf at 0⁻¹ (as PyTorch)
    CHECK(dp[0] == 0.0);
    CHECK(dp[1] == 0.0);
    CHECK(dp[2] == 0.0);
    CHECK(dp[3] == doctest::Approx(std::log(2.0)));
    CHECK(dp[4] == -std::numeric_limits<double>::infinity());
    Tensor(x).zero_grad(true);
    Tensor(p).zero_grad(true);
  }
  // Away from 0 nothing changes: finite differences and second order, broadcast both ways.
  Generator g(1220);
  const std::vector<Tensor> in{Tensor::uniform({3, 4}, 0.5, 2, g, float64).set_requires_grad(),
                               Tensor::uniform({4}, -1.5, 1.5, g, float64).set_requires_grad()};
  check_fd("pow", "pow(x, p) broadcast", [](const std::vector<Tensor>& v) { return pow(v[0], v[1]) + pow(v[1] * v[1] + 0.5, v[0]); }, in, true);
  check_fd("pow", "pow(x, 0) and pow(x, 1)", [](const std::vector<Tensor>& v) { return pow(v[0], 0.0) * v[0] + pow(v[0], 1.0); }, in, true);
}

TEST_CASE("audit s12: relu passes NaN on, in value and gradient, as PyTorch's relu and threshold_backward") {
  // torch.relu(nan) is nan (clamp_min propagates it) and its gradient there is dy (threshold_backward:
  // result ≤ 0 ? 0 : dy). relu(NaN) = 0 hid a diverged input from every check downstream.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor x = Tensor::from_vector({nan, -1.0, 2.0, 0.0, -0.0}, {5}, float64).set_requires_grad();
  Tape tape;
  const Tensor y = relu(x);
  const std::vector<double> v = y.to_vector();
  CHECK(std::isnan(v[0]));
  CHECK(v[1] == 0.0);
  CHECK(v[2] == 2.0);
  CHECK(v[3] == 0.0);
  CHECK(v[4] == 0.0);
  backward(sum(y * Tensor::from_vector({3.0, 5.0, 7.0, 11.0, 13.0}, {5}, float64)), Tensor(), SweepOptions{.retain = true});
  CHECK(x.grad().to_vector() == std::vector<double>{3.0, 0.0, 7.0, 0.0, 0.0});
}
