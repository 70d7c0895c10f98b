// Gradients of every op in autograd/ops.hpp, checked by central differences in float64.
//
// One table drives everything (STYLE rules 11-14): a row is {signature, function, inputs with their
// value domains, input shapes}. Each row becomes its own test case, named by the op's signature, with
// one subcase per set of input shapes; rows marked second-order also run gradgradcheck. Adding an op
// is adding a row.
//
// Domains keep test points away from kinks and domain edges: relu/abs/clamp inputs stay clear of
// 0 and the bounds, max/min inputs have no near-ties, log/sqrt/pow take positive inputs, div's
// denominators stay away from 0. gradcheck scalarizes non-scalar outputs with fixed random weights.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <source_location>
#include <stdexcept>
#include <string>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

// ---------------------------------------------------------------------------------------------
// Value domains: how an input's values are drawn (float64, from a seeded generator).

using Draw = std::function<Tensor(const Shape&, Generator&)>;

template <class Next>
Tensor draw_values(const Shape& shape, Next next) {
  std::vector<double> v(shape.numel());
  for (double& x : v) x = next();
  return Tensor::from_vector(v, shape, float64);
}

/// scale · N(0, 1): smooth ops with no domain limits.
Draw normal(double scale = 1.0) {
  return [scale](const Shape& s, Generator& g) { return draw_values(s, [&] { return scale * g.normal(); }); };
}

/// Uniform in [lo, hi): positive inputs for log, sqrt, pow.
Draw uniform(double lo, double hi) {
  return [lo, hi](const Shape& s, Generator& g) { return draw_values(s, [&] { return g.uniform(lo, hi); }); };
}

/// Uniform in [lo, hi) but at least `gap` from every point of `kinks` (relu and abs at 0, clamp's bounds,
/// div's denominators away from 0).
Draw avoiding(double lo, double hi, std::vector<double> kinks, double gap) {
  return [=](const Shape& s, Generator& g) {
    return draw_values(s, [&] {
      for (;;) {
        const double v = g.uniform(lo, hi);
        if (std::all_of(kinks.begin(), kinks.end(), [&](double k) { return std::abs(v - k) >= gap; })) return v;
      }
    });
  };
}

/// A shuffled ladder: any two values differ by at least 0.1, so max/min have no near-ties.
Draw distinct() {
  return [](const Shape& s, Generator& g) {
    const std::size_t n = s.numel();
    std::vector<double> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = 0.1 * (static_cast<double>(i) - static_cast<double>(n) / 2);
    for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[g.integer(i)]);
    for (double& x : v) x += g.uniform(0, 0.02);
    return Tensor::from_vector(v, s, float64);
  };
}

/// Random 0/1 values, both present when there are two elements or more (where's cond, masks).
Draw mask() {
  return [](const Shape& s, Generator& g) {
    std::vector<double> v(s.numel());
    for (double& x : v) x = static_cast<double>(g.integer(2));
    if (v.size() >= 2) v[0] = 1, v[1] = 0;
    return Tensor::from_vector(v, s, float64);
  };
}

// ---------------------------------------------------------------------------------------------
// Shapes: a subcase is one shape per input.

using Shapes = std::vector<Shape>;

Shape random_shape(Generator& g, std::size_t min_rank, std::size_t max_rank, std::size_t max_dim = 4) {
  Shape s;
  const std::size_t rank = min_rank + g.integer(max_rank - min_rank + 1);
  for (std::size_t i = 0; i < rank; ++i) s.push_back(1 + g.integer(max_dim));
  return s;
}

/// Shapes for elementwise unary ops: scalar, vector, size-1 dims, 3-D, and two random shapes.
std::vector<Shapes> unary_shapes(Generator& g) {
  const Shape r1 = random_shape(g, 1, 3), r2 = random_shape(g, 1, 3);
  return {{Shape{}}, {Shape{5}}, {Shape{3, 1}}, {Shape{2, 3, 4}}, {r1}, {r2}};
}

/// Shapes for broadcasting binary ops: equal shapes, size-1 dims on both sides, missing leading
/// dims, scalars on either side, and a random shape against a random broadcastable one (both ways).
std::vector<Shapes> binary_shapes(Generator& g) {
  const Shape s = random_shape(g, 2, 3);
  Shape t = s;
  for (std::size_t d = 0; d < t.ndim(); ++d)
    if (g.integer(2)) t[d] = 1;
  const Shape u(t.begin() + g.integer(t.ndim()), t.end());
  return {{Shape{2, 3}, Shape{2, 3}}, {Shape{3, 1}, Shape{1, 4}}, {Shape{4}, Shape{2, 3, 4}},
          {Shape{2, 3, 4}, Shape{3, 1}}, {Shape{}, Shape{2, 3}},  {Shape{2, 3}, Shape{}},
          {Shape{1}, Shape{1}},          {s, s},                  {s, u},
          {u, s}};
}

/// Operand shapes of matmul(a, b, ta, tb) for op(a) (m, k) · op(b) (k, n), with a leading batch if > 0.
Shapes matmul_shapes(bool ta, bool tb, std::size_t m, std::size_t k, std::size_t n, std::size_t batch = 0) {
  Shape a = ta ? Shape{k, m} : Shape{m, k};
  Shape b = tb ? Shape{n, k} : Shape{k, n};
  if (batch == 0) return {a, b};
  return {Shape{batch, a[0], a[1]}, Shape{batch, b[0], b[1]}};
}

std::vector<Shapes> matmul_cases(bool ta, bool tb, Generator& g) {
  auto dim = [&] { return 1 + g.integer(5); };
  const std::size_t m = dim(), k = dim(), n = dim(), bm = dim(), bk = dim(), bn = dim();
  return {matmul_shapes(ta, tb, 3, 4, 2),       matmul_shapes(ta, tb, 1, 3, 1),    matmul_shapes(ta, tb, 3, 1, 4),
          matmul_shapes(ta, tb, 2, 3, 4, 2),    matmul_shapes(ta, tb, 1, 2, 3, 1), matmul_shapes(ta, tb, m, k, n),
          matmul_shapes(ta, tb, bm, bk, bn, 3)};
}

// ---------------------------------------------------------------------------------------------
// Helpers the rows use to derive an op's arguments from its input's shape.

/// Indices into an axis of size n with repeats (the last index three times): {n−1, 0, n−1, n/2, n−1}.
Indices repeated_indices(std::size_t n) {
  const auto last = static_cast<std::int64_t>(n - 1), mid = static_cast<std::int64_t>(n / 2);
  return {last, 0, last, mid, last};
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Input {
  std::string name;
  Draw draw;
  bool requires_grad = true;  // false: a constant operand (where's cond, masked_fill's mask)
};

enum class SecondOrder {
  none,
  direct,   // gradgradcheck(f)
  squared,  // gradgradcheck(f²): for linear ops, whose own second derivative is zero — squaring makes
            // the incoming adjoint depend on x, so the op's recorded backward gets differentiated
};

struct OpCase {
  std::string signature;       // the test case's name
  TensorFunction f;
  std::vector<Input> inputs;
  std::vector<Shapes> shapes;  // one subcase each: a shape per input
  SecondOrder second = SecondOrder::none;
  GradcheckOptions options = {};
  std::uint_least32_t line = std::source_location::current().line();  // the row's line, for reports
};

using In = const std::vector<Tensor>&;

std::vector<OpCase> build_table() {
  Generator g(20240611);  // random shapes, fixed by this seed
  const Draw smooth = normal();
  const Draw positive = uniform(0.5, 2.0);
  const Draw off_zero = avoiding(-2, 2, {0}, 0.1);
  std::vector<OpCase> t;

  // ---- arithmetic (broadcasting) ----
  t.push_back({.signature = "add(a, b)", .f = [](In in) { return add(in[0], in[1]); },
               .inputs = {{"a", smooth}, {"b", smooth}}, .shapes = binary_shapes(g)});
  t.push_back({.signature = "sub(a, b)", .f = [](In in) { return sub(in[0], in[1]); },
               .inputs = {{"a", smooth}, {"b", smooth}}, .shapes = binary_shapes(g)});
  t.push_back({.signature = "mul(a, b)", .f = [](In in) { return mul(in[0], in[1]); },
               .inputs = {{"a", smooth}, {"b", smooth}}, .shapes = binary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "div(a, b)", .f = [](In in) { return div(in[0], in[1]); },
               .inputs = {{"a", smooth}, {"b", avoiding(-2, 2, {0}, 0.5)}}, .shapes = binary_shapes(g),
               .second = SecondOrder::direct});
  t.push_back({.signature = "neg(x)", .f = [](In in) { return neg(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = unary_shapes(g)});
  t.push_back({.signature = "pow(x, p) — p = 2.5", .f = [](In in) { return pow(in[0], 2.5); },
               .inputs = {{"x", positive}}, .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "pow(x, p) — p = -1.5", .f = [](In in) { return pow(in[0], -1.5); },
               .inputs = {{"x", positive}}, .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "pow(x, p) — p = 3, x of either sign", .f = [](In in) { return pow(in[0], 3.0); },
               .inputs = {{"x", smooth}}, .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "pow(x, p) — p a tensor", .f = [](In in) { return pow(in[0], in[1]); },
               .inputs = {{"x", positive}, {"p", uniform(-2, 2)}}, .shapes = binary_shapes(g),
               .second = SecondOrder::direct});

  // ---- elementwise functions ----
  t.push_back({.signature = "exp(x)", .f = [](In in) { return exp(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "log(x)", .f = [](In in) { return log(in[0]); }, .inputs = {{"x", uniform(0.2, 3)}},
               .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "log1p(x)", .f = [](In in) { return log1p(in[0]); }, .inputs = {{"x", uniform(-0.8, 3)}},
               .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "tanh(x)", .f = [](In in) { return tanh(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "sigmoid(x)", .f = [](In in) { return sigmoid(in[0]); }, .inputs = {{"x", normal(2)}},
               .shapes = unary_shapes(g), .second = SecondOrder::direct});
  t.push_back({.signature = "relu(x)", .f = [](In in) { return relu(in[0]); }, .inputs = {{"x", off_zero}},
               .shapes = unary_shapes(g)});
  t.push_back({.signature = "abs(x)", .f = [](In in) { return abs(in[0]); }, .inputs = {{"x", off_zero}},
               .shapes = unary_shapes(g)});
  t.push_back({.signature = "sqrt(x)", .f = [](In in) { return sqrt(in[0]); }, .inputs = {{"x", uniform(0.2, 3)}},
               .shapes = unary_shapes(g)});
  t.push_back({.signature = "clamp(x, lo, hi)", .f = [](In in) { return clamp(in[0], -0.5, 0.8); },
               .inputs = {{"x", avoiding(-1.5, 1.5, {-0.5, 0.8}, 0.05)}}, .shapes = unary_shapes(g)});
  t.push_back({.signature = "where(cond, a, b)", .f = [](In in) { return where(in[0], in[1], in[2]); },
               .inputs = {{"cond", mask(), false}, {"a", smooth}, {"b", smooth}},
               .shapes = {{Shape{2, 3}, Shape{2, 3}, Shape{2, 3}},
                          {Shape{2, 3}, Shape{3}, Shape{2, 1}},
                          {Shape{3, 1}, Shape{1, 4}, Shape{}},
                          {Shape{2, 3, 4}, Shape{3, 4}, Shape{4}},
                          {Shape{}, Shape{2, 3}, Shape{2, 3}}},
               .second = SecondOrder::squared});
  // float64 → float32 → float64: both directions' backward. The step is large enough that float32
  // rounding (~1e-7 relative) stays far below the tolerance.
  GradcheckOptions cast_options;
  cast_options.eps = 1e-3;
  t.push_back({.signature = "cast(x, dtype)", .f = [](In in) { return cast(cast(in[0], float32), float64); },
               .inputs = {{"x", smooth}}, .shapes = unary_shapes(g), .options = cast_options});

  // ---- linear algebra: every transpose combination, 2-D and batched 3-D ----
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      std::string sig = "matmul(a, b";
      sig += ta ? ", transpose_a=true" : "";
      sig += tb ? ", transpose_b=true" : "";
      t.push_back({.signature = sig + ")", .f = [ta, tb](In in) { return matmul(in[0], in[1], ta, tb); },
                   .inputs = {{"a", smooth}, {"b", smooth}}, .shapes = matmul_cases(ta, tb, g),
                   .second = SecondOrder::direct});
    }

  // affine: a bias per row ((m,) or (m, 1)), a whole base (m, n), a vector x, and no bias.
  const std::size_t am = 1 + g.integer(4), ak = 1 + g.integer(4), an = 1 + g.integer(4);
  t.push_back({.signature = "affine(W, x, b)", .f = [](In in) { return affine(in[0], in[1], in[2]); },
               .inputs = {{"W", smooth}, {"x", smooth}, {"b", smooth}},
               .shapes = {{Shape{3, 4}, Shape{4, 2}, Shape{3}},
                          {Shape{3, 4}, Shape{4, 2}, Shape{3, 1}},
                          {Shape{3, 4}, Shape{4, 2}, Shape{3, 2}},
                          {Shape{3, 4}, Shape{4}, Shape{3}},
                          {Shape{1, 1}, Shape{1, 1}, Shape{1}},
                          {Shape{am, ak}, Shape{ak, an}, Shape{am}},
                          {Shape{am, ak}, Shape{ak, an}, Shape{am, an}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "affine(W, x, b, base) — a bias per row and a base",
               .f = [](In in) { return affine(in[0], in[1], in[2], in[3]); },
               .inputs = {{"W", smooth}, {"x", smooth}, {"b", smooth}, {"base", smooth}},
               .shapes = {{Shape{3, 4}, Shape{4, 2}, Shape{3}, Shape{3, 2}},
                          {Shape{3, 4}, Shape{4}, Shape{3}, Shape{3}},
                          {Shape{am, ak}, Shape{ak, an}, Shape{am, 1}, Shape{am, an}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "affine(W, x) — no bias", .f = [](In in) { return affine(in[0], in[1]); },
               .inputs = {{"W", smooth}, {"x", smooth}},
               .shapes = {{Shape{3, 4}, Shape{4, 2}}, {Shape{2, 3}, Shape{3}}, {Shape{am, ak}, Shape{ak, an}}},
               .second = SecondOrder::direct});

  // ---- shape ----
  t.push_back({.signature = "permute(x, axes={2, 0, 1})", .f = [](In in) { return permute(in[0], {2, 0, 1}); },
               .inputs = {{"x", smooth}},
               .shapes = {{Shape{2, 3, 4}}, {Shape{1, 3, 2}}, {random_shape(g, 3, 3)}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "permute(x, axes={-1, 0, -2}) — negative axes",
               .f = [](In in) { return permute(in[0], {-1, 0, -2}); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{2, 3, 4}}, {Shape{4, 1, 2}}}});
  t.push_back({.signature = "reshape(x, shape)",
               .f = [](In in) {
                 const std::size_t last = in[0].dim(-1);
                 return reshape(in[0], Shape{last, in[0].numel() / last});
               },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{2, 3, 4}}, {Shape{6}}, {Shape{1, 5}}, {Shape{3, 1, 2}}}});
  t.push_back({.signature = "broadcast_to(x, shape)",
               .f = [](In in) {
                 Shape target{2};  // a new leading dimension, and every size-1 dimension repeated 3 times
                 for (std::size_t d : in[0].shape()) target.push_back(d == 1 ? 3 : d);
                 return broadcast_to(in[0], target);
               },
               .inputs = {{"x", smooth}},
               .shapes = {{Shape{3, 1}}, {Shape{1}}, {Shape{}}, {Shape{2, 1, 4}}, {Shape{1, 1}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "slice(x, axis=-1, start=1, stop=n, step=2)",
               .f = [](In in) { return slice(in[0], -1, 1, in[0].dim(-1), 2); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{7}}, {Shape{3, 6}}, {Shape{2, 3, 5}}, {Shape{4, 2}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "slice(x, axis=0, start=1, stop=n-1)",
               .f = [](In in) { return slice(in[0], 0, 1, in[0].dim(0) - 1); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{4}}, {Shape{3, 2}}, {Shape{5, 2, 2}}}, .second = SecondOrder::squared});
  t.push_back({.signature = "unslice(g, shape, axis=0, start=1, stop, step=2)",
               .f = [](In in) {
                 const Shape full = with_dim(in[0].shape(), 0, 2 * in[0].dim(0) + 1);
                 return unslice(in[0], full, 0, 1, full[0], 2);
               },
               .inputs = {{"g", smooth}}, .shapes = {{Shape{3}}, {Shape{2, 3}}, {Shape{1, 4}}, {Shape{3, 2, 2}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "concat(xs, axis=1)", .f = [](In in) { return concat(in, 1); },
               .inputs = {{"a", smooth}, {"b", smooth}, {"c", smooth}},
               .shapes = {{Shape{2, 1}, Shape{2, 3}, Shape{2, 2}},
                          {Shape{3, 2, 1}, Shape{3, 1, 1}, Shape{3, 4, 1}},
                          {Shape{1, 2}, Shape{1, 1}, Shape{1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "concat(xs, axis=0)", .f = [](In in) { return concat(in, 0); },
               .inputs = {{"a", smooth}, {"b", smooth}, {"c", smooth}},
               .shapes = {{Shape{2}, Shape{3}, Shape{1}}, {Shape{1, 3}, Shape{2, 3}, Shape{1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "stack(xs, axis=0)", .f = [](In in) { return stack(in, 0); },
               .inputs = {{"a", smooth}, {"b", smooth}, {"c", smooth}},
               .shapes = {{Shape{}, Shape{}, Shape{}}, {Shape{2, 3}, Shape{2, 3}, Shape{2, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "stack(xs, axis=-1)", .f = [](In in) { return stack(in, -1); },
               .inputs = {{"a", smooth}, {"b", smooth}, {"c", smooth}},
               .shapes = {{Shape{4}, Shape{4}, Shape{4}}, {Shape{2, 1, 3}, Shape{2, 1, 3}, Shape{2, 1, 3}}}});

  // ---- reductions ----
  t.push_back({.signature = "sum(x)", .f = [](In in) { return sum(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = unary_shapes(g), .second = SecondOrder::squared});
  t.push_back({.signature = "sum(x, axes={0, -1})", .f = [](In in) { return sum(in[0], {0, -1}); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{3, 4}}, {Shape{2, 3, 4}}, {Shape{1, 5}}, {Shape{2, 1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "sum(x, axes={1}, keepdims=true)", .f = [](In in) { return sum(in[0], {1}, true); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{3, 4}}, {Shape{2, 3, 4}}, {Shape{4, 1}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "max(x, axis=1)", .f = [](In in) { return max(in[0], 1); }, .inputs = {{"x", distinct()}},
               .shapes = {{Shape{3, 4}}, {Shape{2, 5, 3}}, {Shape{4, 1}}, {Shape{1, 6}}, {random_shape(g, 2, 3)}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "max(x, axis=-1, keepdims=true)", .f = [](In in) { return max(in[0], -1, true); },
               .inputs = {{"x", distinct()}}, .shapes = {{Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 1}}}});

  // ---- indexing ----
  t.push_back({.signature = "index_select(x, axis=0, indices) — repeated indices",
               .f = [](In in) { return index_select(in[0], 0, repeated_indices(in[0].dim(0))); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{3}}, {Shape{4, 2}}, {Shape{3, 2, 2}}, {Shape{1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "index_select(x, axis=1, indices) — repeated indices",
               .f = [](In in) { return index_select(in[0], 1, repeated_indices(in[0].dim(1))); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{2, 3}}, {Shape{2, 4, 3}}}});
  t.push_back({.signature = "index_add(g, shape, axis=0, indices) — repeated indices",
               .f = [](In in) {
                 const Shape full = with_dim(in[0].shape(), 0, 3);
                 return index_add(in[0], full, 0, repeated_indices(3));
               },
               .inputs = {{"g", smooth}}, .shapes = {{Shape{5}}, {Shape{5, 2}}, {Shape{5, 1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "gather(x, axis=1, index, index_shape)",
               .f = [](In in) {
                 const Shape is = with_dim(in[0].shape(), 1, 5);
                 return gather(in[0], 1, spread_index(is, in[0].dim(1)), is);
               },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{3, 4}}, {Shape{2, 3, 4}}, {Shape{4, 1}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "scatter_add(g, shape, axis=1, index, index_shape)",
               .f = [](In in) {
                 const Shape is = in[0].shape();
                 return scatter_add(in[0], with_dim(is, 1, 3), 1, spread_index(is, 3), is);
               },
               .inputs = {{"g", smooth}}, .shapes = {{Shape{3, 5}}, {Shape{2, 5, 4}}, {Shape{4, 2}}},
               .second = SecondOrder::squared});

  // ---- compositions ----
  t.push_back({.signature = "sum_to_shape(g, shape)",
               .f = [](In in) {
                 // Drop the leading dimension and keep the last as size 1: (2, 3, 4) → (3, 1).
                 const Shape s = in[0].shape();
                 Shape target(s.begin() + 1, s.end());
                 if (target.ndim() > 0) target[target.ndim() - 1] = 1;
                 return sum_to_shape(in[0], target);
               },
               .inputs = {{"g", smooth}}, .shapes = {{Shape{2, 3, 4}}, {Shape{4, 5}}, {Shape{3}}, {Shape{2, 1, 3}}}});
  t.push_back({.signature = "mean(x)", .f = [](In in) { return mean(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{}}, {Shape{5}}, {Shape{2, 3}}}});
  t.push_back({.signature = "mean(x, axes={0, -1}, keepdims=true)",
               .f = [](In in) { return mean(in[0], {0, -1}, true); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{2, 3}}, {Shape{2, 3, 4}}, {Shape{1, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "min(x, axis=0)", .f = [](In in) { return min(in[0], 0); }, .inputs = {{"x", distinct()}},
               .shapes = {{Shape{3, 4}}, {Shape{2, 3, 2}}, {Shape{1, 5}}, {Shape{4}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "max(x)", .f = [](In in) { return max(in[0]); }, .inputs = {{"x", distinct()}},
               .shapes = {{Shape{}}, {Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 2}}}, .second = SecondOrder::squared});
  t.push_back({.signature = "min(x)", .f = [](In in) { return min(in[0]); }, .inputs = {{"x", distinct()}},
               .shapes = {{Shape{}}, {Shape{4}}, {Shape{2, 5}}, {Shape{3, 1, 2}}}, .second = SecondOrder::squared});
  t.push_back({.signature = "square(x)", .f = [](In in) { return square(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = unary_shapes(g)});
  t.push_back({.signature = "transpose(x)", .f = [](In in) { return transpose(in[0]); }, .inputs = {{"x", smooth}},
               .shapes = {{Shape{2, 3}}, {Shape{2, 3, 4}}, {Shape{1, 4}}}});
  t.push_back({.signature = "unsqueeze(x, axis=-1)", .f = [](In in) { return unsqueeze(in[0], -1); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{}}, {Shape{3}}, {Shape{2, 3}}}});
  t.push_back({.signature = "squeeze(x, axis=1)", .f = [](In in) { return squeeze(in[0], 1); },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{3, 1}}, {Shape{2, 1, 4}}}});
  t.push_back({.signature = "logsumexp(x, axis=-1)", .f = [](In in) { return logsumexp(in[0], -1); },
               .inputs = {{"x", normal(3)}}, .shapes = {{Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 4}}, {Shape{4, 1}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "logsumexp(x, axis=0, keepdims=true)", .f = [](In in) { return logsumexp(in[0], 0, true); },
               .inputs = {{"x", normal(3)}}, .shapes = {{Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 2}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "softmax(x, axis=-1)", .f = [](In in) { return softmax(in[0], -1); },
               .inputs = {{"x", normal(2)}}, .shapes = {{Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 4}}, {Shape{4, 1}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "log_softmax(x, axis=-1)", .f = [](In in) { return log_softmax(in[0], -1); },
               .inputs = {{"x", normal(2)}}, .shapes = {{Shape{5}}, {Shape{3, 4}}, {Shape{2, 3, 4}}},
               .second = SecondOrder::direct});
  t.push_back({.signature = "softplus(x)", .f = [](In in) { return softplus(in[0]); }, .inputs = {{"x", normal(3)}},
               .shapes = unary_shapes(g),
               .second = SecondOrder::direct});
  t.push_back({.signature = "log_sigmoid(x)", .f = [](In in) { return log_sigmoid(in[0]); },
               .inputs = {{"x", normal(3)}}, .shapes = unary_shapes(g),
               .second = SecondOrder::direct});
  // The pieces come back joined in another order, so a piece sent to the wrong place would show.
  t.push_back({.signature = "split(x, sizes={2, 4, 1}, axis=-1)",
               .f = [](In in) {
                 const std::vector<Tensor> p = split(in[0], {2, 4, 1}, -1);
                 return concat({p[2], p[0], p[1]}, -1);
               },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{7}}, {Shape{2, 7}}, {Shape{3, 2, 7}}}});
  t.push_back({.signature = "chunk(x, n=3, axis=0)",
               .f = [](In in) {
                 std::vector<Tensor> p = chunk(in[0], 3, 0);
                 std::reverse(p.begin(), p.end());
                 return concat(p, 0);
               },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{7}}, {Shape{5, 2}}, {Shape{3, 4}}}});
  // The sweep's own primitive: backward(create_graph) gives a leaf's first gradient a clone entry
  // (prim::clone), so .grad() is a fresh tensor with history; here .grad() = d Σ(p⊙x)/dp = x.
  t.push_back({.signature = "clone — backward(create_graph) into a fresh .grad()",
               .f = [](In in) {
                 Tensor p = Tensor::zeros(in[0].shape(), in[0].dtype()).set_requires_grad();
                 EnableGradGuard recording;  // gradcheck's numeric evaluations run without a tape
                 backward(sum(p * in[0]), Tensor(), SweepOptions{.create_graph = true});
                 return p.grad();
               },
               .inputs = {{"x", smooth}}, .shapes = {{Shape{}}, {Shape{3}}, {Shape{2, 3}}},
               .second = SecondOrder::squared});
  t.push_back({.signature = "masked_fill(x, mask, value)", .f = [](In in) { return masked_fill(in[0], in[1], -2.5); },
               .inputs = {{"x", smooth}, {"mask", mask(), false}},
               .shapes = {{Shape{2, 3}, Shape{2, 3}}, {Shape{2, 3}, Shape{3}}, {Shape{3, 4}, Shape{3, 1}},
                          {Shape{2, 3, 4}, Shape{}}}});
  return t;
}

const std::vector<OpCase>& op_table() {
  static const std::vector<OpCase> table = build_table();
  return table;
}

const OpCase& row(const std::string& signature) {
  for (const OpCase& r : op_table())
    if (r.signature == signature) return r;
  throw std::logic_error("no op table row " + signature);
}

// ---------------------------------------------------------------------------------------------
// Running a row.

/// The inputs of one subcase: drawn in float64 from a generator seeded by the subcase's position.
std::vector<Tensor> draw_inputs(const OpCase& op, const Shapes& shapes, std::uint32_t seed) {
  REQUIRE(shapes.size() == op.inputs.size());
  Generator gen(seed);
  std::vector<Tensor> in;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    Tensor x = op.inputs[i].draw(shapes[i], gen);
    x.set_name(op.inputs[i].name);
    if (op.inputs[i].requires_grad) x.set_requires_grad();
    in.push_back(x);
  }
  return in;
}

/// "a (3, 1) with b (1, 4)"
std::string describe(const OpCase& op, const Shapes& shapes) {
  std::string s;
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    if (i) s += " with ";
    s += op.inputs[i].name + " " + shapes[i].str();
  }
  return s;
}

void check_row(const OpCase& op) {
  for (std::size_t k = 0; k < op.shapes.size(); ++k) {
    const std::string label = describe(op, op.shapes[k]);
    SUBCASE(label.c_str()) {
      const std::vector<Tensor> in = draw_inputs(op, op.shapes[k], static_cast<std::uint32_t>(1000 + k));
      const GradcheckReport r = gradcheck(op.f, in, op.options);
      CHECK_MESSAGE(r.ok(), op.signature << " at " << label << "\n" << r.str());
      std::size_t n_grad = 0, n_checked = 0;
      for (const Input& i : op.inputs) n_grad += i.requires_grad;
      for (const InputReport& ir : r.inputs) n_checked += ir.n_checked;
      CHECK(r.inputs.size() == n_grad);
      std::size_t n_elements = 0;
      for (std::size_t i = 0; i < in.size(); ++i)
        if (op.inputs[i].requires_grad) n_elements += in[i].numel();
      CHECK(n_checked == n_elements);  // every element of every differentiable input was checked

      if (op.second != SecondOrder::none) {
        TensorFunction f2 = op.f;
        if (op.second == SecondOrder::squared)
          f2 = [f = op.f](In x) {
            const Tensor y = f(x);
            return y * y;
          };
        const GradcheckReport r2 = gradgradcheck(f2, in, op.options);
        CHECK_MESSAGE(r2.ok(), op.signature << " at " << label << "\n" << r2.str());
      }
    }
  }
}

// Each row is registered as its own doctest test case, named by its signature and located at the
// row's line (STYLE rule 14) — what the TEST_CASE macro does, done once per row, so that adding a row
// adds a test. The one test function finds its row by the running test case's name.
void run_current_row() {
  const char* name = doctest::getContextOptions()->currentTest->m_name;
  for (const OpCase& op : op_table())
    if (std::strcmp(op.signature.c_str(), name) == 0) return check_row(op);
  FAIL("no op table row named " << name);
}

const int registered_rows = [] {
  for (const OpCase& op : op_table())
    doctest::detail::regTest(doctest::detail::TestCase(run_current_row, __FILE__, op.line,
                                                       doctest_detail_test_suite_ns::getCurrentTestSuite()) *
                             op.signature.c_str());
  return 0;
}();

}  // namespace

TEST_CASE("op table: signatures are unique and every row has shapes") {
  (void)registered_rows;
  const auto& table = op_table();
  std::set<std::string> seen;
  for (const OpCase& op : table) {
    CAPTURE(op.signature);
    CHECK(seen.insert(op.signature).second);
    CHECK_FALSE(op.shapes.empty());
    for (const Shapes& s : op.shapes) CHECK(s.size() == op.inputs.size());
  }
}

// Enumerates the primitives (autograd/primitives.hpp) against the table, both ways: every primitive
// — each rule variant — is recorded, with its non-empty rule, by some subcase of some row (so it has
// a gradient check); and every entry any row records carries the text of one of those constants, so
// a rule written (or edited) anywhere else fails here. (By text, not by address: the linker merges
// equal string literals, so an address could not tell a copy from the constant.)
TEST_CASE("op table: every primitive records its one rule and has a gradient-check row") {
  std::map<std::string, std::vector<std::string>> rows_recording;  // rule → rows recording it
  std::set<std::string> registered;
  for (const Primitive* p : all_primitives()) registered.insert(p->rule);
  for (const OpCase& op : op_table())
    for (std::size_t k = 0; k < op.shapes.size(); ++k) {
      Tape tape;
      const std::vector<Tensor> in = draw_inputs(op, op.shapes[k], static_cast<std::uint32_t>(1000 + k));
      (void)op.f(in);
      for (const Node& n : tape.entries()) {
        CAPTURE(op.signature);
        const std::string entry = std::string(n.op) + ": " + n.rule;
        CAPTURE(entry);
        CHECK_MESSAGE(registered.count(n.rule), "an entry's rule is not a Primitive constant of primitives.hpp");
        rows_recording[n.rule].push_back(op.signature);
      }
    }
  CHECK(registered.size() == all_primitives().size());  // no two primitives share a rule
  for (const Primitive* p : all_primitives()) {
    const std::string primitive = std::string(p->op) + ": " + p->rule;
    CAPTURE(primitive);
    CHECK(std::strlen(p->op) > 0);
    CHECK(std::strlen(p->rule) > 0);
    CHECK_MESSAGE(rows_recording.count(p->rule), "no row of the gradient-check table records this primitive");
  }
}

// ---------------------------------------------------------------------------------------------
// gradcheck must be able to fail (STYLE rule 15): wrong backwards planted in custom ops.

namespace {

/// y = 3x, with a backward that is 10% too large at flat element `wrong_at` (none if negative).
Tensor times_three(const Tensor& x, int wrong_at) {
  return custom_op(
      "times_three", {x}, [](const std::vector<Tensor>& in) { return in[0] * 3.0; },
      [wrong_at](BackwardContext& c) {
        std::vector<double> factor(c.input(0).numel(), 3.0);
        if (wrong_at >= 0) factor[static_cast<std::size_t>(wrong_at)] = 3.3;
        c.accumulate(0, c.grad_out() * Tensor::from_vector(factor, c.input(0).shape(), c.input(0).dtype()));
      });
}

/// y = 2x for a square x, with a backward that transposes the adjoint when `wrong` — invisible to a
/// plain sum(y), whose adjoint is all ones and symmetric.
Tensor twice(const Tensor& x, bool wrong) {
  return custom_op(
      "twice", {x}, [](const std::vector<Tensor>& in) { return in[0] * 2.0; },
      [wrong](BackwardContext& c) { c.accumulate(0, 2.0 * (wrong ? transpose(c.grad_out()) : c.grad_out())); });
}

/// C = A·B with dA computed as dC·B instead of dC·Bᵀ (square operands, so the shapes still fit).
Tensor matmul_missing_transpose(const Tensor& A, const Tensor& B) {
  return custom_op(
      "matmul_missing_transpose", {A, B}, [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
      [](BackwardContext& c) {
        c.accumulate(0, matmul(c.grad_out(), c.input(1)));              // wrong: should be dC·Bᵀ
        c.accumulate(1, matmul(c.input(0), c.grad_out(), true, false));  // right: Aᵀ·dC
      });
}

}  // namespace

TEST_CASE("gradcheck catches a backward off by 10% at one element, naming input and index") {
  Generator gen(7);
  Tensor x = Tensor::uniform({2, 3}, -1, 1, gen, float64).set_requires_grad().set_name("x");

  const GradcheckReport good = gradcheck([](In in) { return times_three(in[0], -1); }, {x});
  CHECK_MESSAGE(good.ok(), good.str());

  // Flat element 5 of a (2, 3) tensor is [1, 2].
  const GradcheckReport r = gradcheck([](In in) { return times_three(in[0], 5); }, {x});
  CHECK_FALSE(r.ok());
  REQUIRE(r.inputs.size() == 1);
  const InputReport& ir = r.inputs[0];
  CHECK(ir.name == "x");
  CHECK(ir.shape == Shape{2, 3});
  CHECK(ir.n_checked == 6);
  CHECK(ir.n_failed == 1);
  REQUIRE_FALSE(ir.worst.empty());
  CHECK(ir.worst[0].index == std::vector<std::size_t>{1, 2});
  CHECK(ir.worst[0].analytic == doctest::Approx(1.1 * ir.worst[0].numeric).epsilon(1e-6));
  CHECK(ir.worst[0].abs_err == doctest::Approx(std::abs(ir.worst[0].analytic - ir.worst[0].numeric)));
  const std::string text = r.str();
  CHECK(text.find("x") != std::string::npos);
  CHECK(text.find("[1, 2]") != std::string::npos);
}

TEST_CASE("gradcheck catches a transposed adjoint that a plain sum would hide") {
  Generator gen(8);
  Tensor x = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("x");

  // Under sum(y) the transposed adjoint is all ones and the wrong backward looks right...
  const std::vector<Tensor> g = grad({sum(twice(x, true))}, {x});
  for (double v : g[0].to_vector()) CHECK(v == doctest::Approx(2.0));

  // ...but gradcheck's random weights are not symmetric.
  CHECK(gradcheck([](In in) { return twice(in[0], false); }, {x}).ok());
  const GradcheckReport r = gradcheck([](In in) { return twice(in[0], true); }, {x});
  CHECK_FALSE(r.ok());
  REQUIRE(r.inputs.size() == 1);
  CHECK(r.inputs[0].name == "x");
  CHECK(r.inputs[0].n_failed == 6);  // every off-diagonal element; the diagonal is its own transpose
  REQUIRE_FALSE(r.inputs[0].worst.empty());
  const std::vector<std::size_t>& at = r.inputs[0].worst[0].index;
  REQUIRE(at.size() == 2);
  CHECK(at[0] != at[1]);
}

TEST_CASE("gradcheck blames the input whose gradient is wrong and clears the other") {
  Generator gen(9);
  Tensor A = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("A");
  Tensor B = Tensor::uniform({3, 3}, -1, 1, gen, float64).set_requires_grad().set_name("B");
  const GradcheckReport r = gradcheck([](In in) { return matmul_missing_transpose(in[0], in[1]); }, {A, B});
  CHECK_FALSE(r.ok());
  REQUIRE(r.inputs.size() == 2);
  CHECK(r.inputs[0].name == "A");
  CHECK_FALSE(r.inputs[0].ok());
  CHECK(r.inputs[0].n_failed > 0);
  CHECK(r.inputs[1].name == "B");
  CHECK_MESSAGE(r.inputs[1].ok(), r.str());
  CHECK(r.inputs[1].n_failed == 0);
}

// ---------------------------------------------------------------------------------------------
// float32: the same rows' gradients, computed in float32, agree with float64 to 1e-4 (relative).

TEST_CASE("float32 gradients agree with float64 within 1e-4 relative") {
  for (const char* sig : {"tanh(x)", "sigmoid(x)", "exp(x)", "mul(a, b)", "div(a, b)", "matmul(a, b)",
                          "matmul(a, b, transpose_a=true, transpose_b=true)", "softmax(x, axis=-1)",
                          "logsumexp(x, axis=-1)", "sum(x, axes={0, -1})", "gather(x, axis=1, index, index_shape)"}) {
    const OpCase& op = row(sig);
    for (std::size_t k = 0; k < op.shapes.size(); ++k) {
      const std::string label = op.signature + " at " + describe(op, op.shapes[k]);
      SUBCASE(label.c_str()) {
        const std::vector<Tensor> in64 = draw_inputs(op, op.shapes[k], static_cast<std::uint32_t>(2000 + k));
        std::vector<Tensor> in32;
        for (const Tensor& x : in64) in32.push_back(x.detach().to(float32).set_requires_grad());

        // The same asymmetric weights in both precisions (drawn in float64, rounded once).
        Generator wgen(99);
        const Tensor y64 = op.f(in64);
        const Tensor w64 = Tensor::uniform(y64.shape(), 0.5, 1.5, wgen, float64);
        const std::vector<Tensor> g64 = grad({sum(y64 * w64)}, in64);
        const Tensor y32 = op.f(in32);
        CHECK(y32.dtype() == float32);
        const std::vector<Tensor> g32 = grad({sum(y32 * w64.to(float32))}, in32);

        for (std::size_t i = 0; i < in64.size(); ++i) {
          const std::vector<double> a = g32[i].to_vector(), b = g64[i].to_vector();
          double diff = 0, norm = 0;
          for (std::size_t j = 0; j < a.size(); ++j) {
            diff += (a[j] - b[j]) * (a[j] - b[j]);
            norm += b[j] * b[j];
          }
          CAPTURE(op.inputs[i].name);
          CHECK(g32[i].dtype() == float32);
          CHECK(std::sqrt(diff) <= 1e-4 * std::sqrt(norm) + 1e-12);
        }

        // gradcheck's float64 shadow of a float32 input says the same.
        GradcheckOptions options;
        options.float32_rtol = 1e-4;
        std::vector<Tensor> in32b;
        for (const Tensor& x : in64) in32b.push_back(x.detach().to(float32).set_requires_grad());
        const GradcheckReport r = gradcheck(op.f, in32b, options);
        CHECK_MESSAGE(r.ok(), r.str());
        for (const InputReport& ir : r.inputs) {
          CHECK(ir.was_float32);
          CHECK(ir.float32_rel_diff <= 1e-4);
        }
        for (const Tensor& x : in32b) CHECK(x.dtype() == float32);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// At kinks and ties finite differences cannot decide; the conventions (PyTorch's) are checked by hand.

namespace {

std::vector<double> grad_of(const std::function<Tensor(const Tensor&)>& f, const std::vector<double>& at) {
  Tensor x = Tensor::from_vector(at, Shape{at.size()}, float64).set_requires_grad();
  return grad({sum(f(x))}, {x})[0].to_vector();
}

}  // namespace

TEST_CASE("gradient conventions at kinks and ties: relu, abs, clamp, max, min") {
  CHECK(grad_of([](const Tensor& x) { return relu(x); }, {-1, 0, 2}) == std::vector<double>{0, 0, 1});
  CHECK(grad_of([](const Tensor& x) { return abs(x); }, {-1, 0, 2}) == std::vector<double>{-1, 0, 1});
  // clamp passes the gradient at the bounds themselves (lo ≤ x ≤ hi).
  CHECK(grad_of([](const Tensor& x) { return clamp(x, -1, 1); }, {-2, -1, 0, 1, 2}) ==
        std::vector<double>{0, 1, 1, 1, 0});
  // Ties along an axis: the first maximal (minimal) element takes the whole adjoint (torch.max(x, dim)).
  CHECK(grad_of([](const Tensor& x) { return max(x, 0); }, {2, 7, 7, 1}) == std::vector<double>{0, 1, 0, 0});
  CHECK(grad_of([](const Tensor& x) { return min(x, 0); }, {2, 1, 7, 1}) == std::vector<double>{0, 1, 0, 0});
  // Over every element the ties share it equally (torch.max(x), torch.min(x)), the NaNs when it is NaN.
  CHECK(grad_of([](const Tensor& x) { return max(x); }, {2, 7, 7, 1}) == std::vector<double>{0, 0.5, 0.5, 0});
  CHECK(grad_of([](const Tensor& x) { return min(x); }, {1, 2, 1, 7, 1}) == std::vector<double>{1.0 / 3, 0, 1.0 / 3, 0, 1.0 / 3});
  CHECK(grad_of([](const Tensor& x) { return max(x); }, {5, 5, 5}) == std::vector<double>{1.0 / 3, 1.0 / 3, 1.0 / 3});
  const double nan = std::nan("");
  CHECK(grad_of([](const Tensor& x) { return max(x); }, {1, nan, 3, nan}) == std::vector<double>{0, 0.5, 0, 0.5});
  CHECK(grad_of([](const Tensor& x) { return min(x); }, {1, nan, -3}) == std::vector<double>{0, 1, 0});
  CHECK(std::isnan(max(Tensor::from_vector({1, nan}, {2}, float64)).item()));
  // float32, a matrix, 0-d, and the values themselves
  Tensor m = Tensor::from_vector({-1, 4, 4, 0, 4, -2}, {2, 3}, float32).set_requires_grad();
  const Tensor mx = max(m);
  CHECK(mx.ndim() == 0);
  CHECK(mx.item() == 4);
  CHECK(min(m).item() == -2);
  CHECK(grad({mx * 3.0}, {m})[0].to_vector() == std::vector<double>{0, 1, 1, 0, 1, 0});
  CHECK(max(Tensor::scalar(2.5, float64)).item() == 2.5);
  CHECK_THROWS_AS(max(Tensor::zeros({0, 3})), ShapeError);
  CHECK_THROWS_AS(min(Tensor::zeros({2, 0})), ShapeError);
}

// softplus and log_sigmoid are smooth, but their composition from max(x, 0) and |x| has kinks at 0 in
// both terms: with relu'(0) = sign(0) = 0 the gradient at exactly 0 came out 0 instead of σ(0) = ½ —
// exactly where zero-initialised logits sit.
TEST_CASE("softplus'(0) = log_sigmoid'(0) = sigma(0) = 1/2") {
  CHECK(grad_of([](const Tensor& x) { return softplus(x); }, {0}) == std::vector<double>{0.5});
  CHECK(grad_of([](const Tensor& x) { return log_sigmoid(x); }, {0}) == std::vector<double>{0.5});
}

// At exactly 0 the second derivative must survive too: a softplus written max(x, 0) + log(1 + e^−|x|)
// multiplies its recorded first derivative by sign(x) and gives 0 here instead of σ'(0) = ¼.
TEST_CASE("softplus''(0) = sigma'(0) = 1/4 (double backward)") {
  Tensor x = Tensor::scalar(0, float64).set_requires_grad();
  const Tensor g = grad({softplus(x)}, {x}, {}, SweepOptions{.create_graph = true})[0];
  CHECK(grad({g}, {x})[0].item() == doctest::Approx(0.25));
}
