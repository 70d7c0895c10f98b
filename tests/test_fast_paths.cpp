// The fast paths are the same math as the plain ones: element-wise and reduction loops against an
// index-by-index reference, products run into adjoints against a sweep that shows every send, fused
// backward loops against their composed form, and the buffer cache.
#include <doctest/doctest.h>

#include <rewind.hpp>

#include <cmath>
#include <vector>

#include "support.hpp"

using namespace rwd;

namespace {


Shape random_shape(Generator& gen, std::size_t ndim, std::size_t max_dim = 4) {
  Shape s;
  for (std::size_t i = 0; i < ndim; ++i) s.push_back(1 + static_cast<std::size_t>(gen.uniform() * max_dim) % max_dim);
  return s;
}

/// A shape broadcastable to `s`: some leading axes dropped, some dimensions set to 1.
Shape broadcastable_to(const Shape& s, Generator& gen) {
  Shape out;
  const std::size_t drop = static_cast<std::size_t>(gen.uniform() * static_cast<double>(s.ndim() + 1)) % (s.ndim() + 1);
  for (std::size_t i = drop; i < s.ndim(); ++i) out.push_back(gen.uniform() < 0.4 ? 1 : s[i]);
  return out;
}

/// Element `flat` of an output of shape `out`, read from `x` broadcast to it (NumPy rules).
double broadcast_read(const Tensor& x, const Shape& out, std::size_t flat) {
  const Shape sx = x.shape();
  std::vector<std::size_t> idx(out.ndim());
  for (std::size_t d = out.ndim(); d-- > 0;) {
    idx[d] = flat % out[d];
    flat /= out[d];
  }
  const std::vector<double> v = x.to_vector();
  std::size_t off = 0;
  const std::size_t lead = out.ndim() - sx.ndim();
  for (std::size_t d = 0; d < sx.ndim(); ++d) off = off * sx[d] + (sx[d] == 1 ? 0 : idx[lead + d]);
  return v[off];
}

}  // namespace

TEST_CASE("fast paths: broadcast add, sub, mul, div match an index-by-index reference on random shapes") {
  Generator gen(11);
  int cases = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const Shape out = random_shape(gen, 1 + trial % 5);
    Shape sa = broadcastable_to(out, gen), sb = broadcastable_to(out, gen);
    if (trial % 2) std::swap(sa, sb);
    // Make sure the pair broadcasts to `out` exactly: one operand keeps the full shape.
    if (trial % 3 == 0) sa = out;
    else sb = out;
    const Tensor a = Tensor::uniform(sa, 0.5, 2.0, gen, float64), b = Tensor::uniform(sb, 0.5, 2.0, gen, float64);
    const Shape so = broadcast_shapes("test", sa, sb);
    const Tensor sum_ = a + b, diff = a - b, prod = a * b, quot = a / b;
    REQUIRE(sum_.shape() == so);
    const std::vector<double> vs = sum_.to_vector(), vd = diff.to_vector(), vp = prod.to_vector(), vq = quot.to_vector();
    for (std::size_t i = 0; i < so.numel(); ++i) {
      const double x = broadcast_read(a, so, i), y = broadcast_read(b, so, i);
      CHECK(vs[i] == x + y);
      CHECK(vd[i] == x - y);
      CHECK(vp[i] == x * y);
      CHECK(vq[i] == x / y);
    }
    ++cases;
  }
  CHECK(cases == 60);
  // Empty dimensions, scalars on either side, and a column against a row.
  CHECK((Tensor::zeros({0, 3}, float64) + Tensor::ones({3}, float64)).shape() == Shape{0, 3});
  CHECK((Tensor::scalar(2.0, float64) * Tensor::scalar(3.0, float64)).item() == 6.0);
  const Tensor outer = Tensor::from_vector(std::vector<double>{1, 2}, {2, 1}, float64) -
                       Tensor::from_vector(std::vector<double>{10, 20, 30}, {1, 3}, float64);
  CHECK(outer.to_vector() == std::vector<double>{-9, -19, -29, -8, -18, -28});
}

TEST_CASE("fast paths: sum over any set of axes and permute match a reference on random shapes") {
  Generator gen(12);
  for (int trial = 0; trial < 40; ++trial) {
    const std::size_t nd = 1 + trial % 5;
    const Shape s = random_shape(gen, nd);
    const Tensor x = Tensor::uniform(s, -1, 1, gen, float64);
    const std::vector<double> v = x.to_vector();
    // Sum over a random subset of axes, keepdims.
    std::vector<int> axes;
    for (std::size_t d = 0; d < nd; ++d)
      if (gen.uniform() < 0.5) axes.push_back(static_cast<int>(d));
    const Tensor y = sum(x, axes, true);
    Shape kept = s;
    for (int a : axes) kept[static_cast<std::size_t>(a)] = 1;
    REQUIRE(y.shape() == kept);
    std::vector<double> ref(kept.numel(), 0.0);
    for (std::size_t i = 0; i < s.numel(); ++i) {
      std::size_t rest = i, off = 0, stride = 1;
      for (std::size_t d = nd; d-- > 0;) {
        const std::size_t k = rest % s[d];
        rest /= s[d];
        off += (kept[d] == 1 ? 0 : k) * stride;
        stride *= kept[d];
      }
      ref[off] += v[i];
    }
    const std::vector<double> got = y.to_vector();
    for (std::size_t i = 0; i < ref.size(); ++i) CHECK(got[i] == doctest::Approx(ref[i]).epsilon(1e-12));
    // Reverse the axes: element [i0, …, in] of x lands at [in, …, i0].
    std::vector<int> rev;
    for (std::size_t d = nd; d-- > 0;) rev.push_back(static_cast<int>(d));
    const Tensor p = permute(x, rev);
    const std::vector<double> pv = p.to_vector();
    for (std::size_t i = 0; i < s.numel(); ++i) {
      // p's flat index of x's element i: p.shape[j] = s[nd-1-j], p index j = x index nd-1-j.
      std::size_t rest = i, off = 0, stride = 1;
      std::vector<std::size_t> xi(nd);
      for (std::size_t d = nd; d-- > 0;) {
        xi[d] = rest % s[d];
        rest /= s[d];
      }
      off = 0;
      stride = 1;
      for (std::size_t j = nd; j-- > 0;) {
        off += xi[nd - 1 - j] * stride;
        stride *= s[nd - 1 - j];
      }
      CHECK(pv[off] == v[i]);
    }
  }
}

TEST_CASE("fast paths: matmul gradients run into adjoints in place and equal a sweep that shows every send") {
  // W is used by three products (one of them batched through reshape), x by two; W's gradient already
  // holds something before the second backward, so the in-place path adds with beta = 1.
  Generator gen(13);
  auto build = [&](const Tensor& W, const Tensor& x, const Tensor& B) {
    Tensor h = tanh(matmul(W, x));
    Tensor g = matmul(W, h, true, false);                 // Wᵀ·h
    Tensor k = matmul(reshape(h, {1, 3, 2}), B);          // batched
    return sum(g * g) + sum(k) + sum(matmul(x, W, true, true));  // xᵀ·Wᵀ
  };
  const Tensor W0 = Tensor::uniform({3, 3}, -1, 1, gen, float64), x0 = Tensor::uniform({3, 2}, -1, 1, gen, float64);
  const Tensor B0 = Tensor::uniform({1, 2, 4}, -1, 1, gen, float64);
  // In place, twice: the second backward accumulates on top of the first.
  Tensor W = W0.clone().set_requires_grad(), x = x0.clone().set_requires_grad(), B = B0.clone().set_requires_grad();
  build(W, x, B).backward();
  build(W, x, B).backward();
  // The step-through sweep (in_place off) sends every product as a tensor.
  Tensor W2 = W0.clone().set_requires_grad(), x2 = x0.clone().set_requires_grad(), B2 = B0.clone().set_requires_grad();
  for (int rep = 0; rep < 2; ++rep) {
    Tape tape;
    ReverseSweep sweep(build(W2, x2, B2));
    std::size_t products_seen = 0;
    while (sweep.step())
      if (std::string(sweep.tape()[static_cast<std::size_t>(sweep.current())].op) == "matmul")
        for (const Tensor& s : sweep.adjoints_out()) products_seen += s.defined() ? 1 : 0;
    CHECK(products_seen == 8);  // 4 matmuls × 2 operands that need a gradient
  }
  for (auto [a, b] : {std::pair{W, W2}, std::pair{x, x2}, std::pair{B, B2}}) {
    const std::vector<double> ga = a.grad().to_vector(), gb = b.grad().to_vector();
    REQUIRE(ga.size() == gb.size());
    for (std::size_t i = 0; i < ga.size(); ++i) CHECK(ga[i] == doctest::Approx(gb[i]).epsilon(1e-13));
  }
  // And both are right: gradcheck runs the in-place sweep against finite differences.
  const GradcheckReport report = gradcheck([&](const std::vector<Tensor>& in) { return build(in[0], in[1], in[2]); },
                                           {W0.clone().set_requires_grad(), x0.clone().set_requires_grad(),
                                            B0.clone().set_requires_grad()});
  CHECK_MESSAGE(report.ok(), report.str());
}

TEST_CASE("fast paths: accumulate_matmul refuses a product of the wrong shape, naming the op") {
  Tensor w = Tensor::ones({3, 2}, float64).set_requires_grad();
  Tensor out = custom_op(
      "bad_product", {w}, [](const std::vector<Tensor>& in) { return sum(in[0]); },
      [](BackwardContext& c) { c.accumulate_matmul(0, Tensor::ones({2, 2}, float64), Tensor::ones({2, 2}, float64)); });
  const std::string msg = message_of<ShapeError>([&] { out.backward(); });
  CHECK(contains(msg, "bad_product"));
  CHECK(contains(msg, "(3, 2)"));
  CHECK(contains(msg, "(2, 2)"));
  Tensor v = Tensor::ones({2, 2}, float64).set_requires_grad();
  Tensor out2 = custom_op(
      "bad_inner", {v}, [](const std::vector<Tensor>& in) { return sum(in[0]); },
      [](BackwardContext& c) { c.accumulate_matmul(0, Tensor::ones({2, 3}, float64), Tensor::ones({2, 2}, float64)); });
  CHECK(contains(message_of<ShapeError>([&] { out2.backward(); }), "bad_inner"));
}

TEST_CASE("fast paths: the one-loop backward of tanh and sigmoid equals their composed backward") {
  Generator gen(14);
  const Tensor x0 = Tensor::uniform({5, 7}, -3, 3, gen, float64);
  for (int which = 0; which < 2; ++which) {
    auto f = [&](const Tensor& x) { return which ? sigmoid(x) : tanh(x); };
    const Tensor seed = Tensor::uniform({5, 7}, -1, 1, gen, float64);
    Tensor a = x0.clone().set_requires_grad();
    backward(f(a), seed);  // grad mode off in the backward: the one-loop form
    Tensor b = x0.clone().set_requires_grad();
    backward(f(b), seed, SweepOptions{.create_graph = true});  // recorded: the composed form
    const std::vector<double> ga = a.grad().to_vector(), gb = b.grad().to_vector();
    for (std::size_t i = 0; i < ga.size(); ++i) CHECK(ga[i] == doctest::Approx(gb[i]).epsilon(1e-15));
  }
}

TEST_CASE("fast paths: the buffer cache serves a repeated step from freed buffers, within its limit") {
  const std::size_t limit_before = buffer_cache_stats().limit_bytes;  // 0 under AddressSanitizer
  set_buffer_cache_limit(std::size_t{64} << 20);
  release_buffer_cache();
  Generator gen(15);
  Tensor W = Tensor::uniform({64, 32}, -1, 1, gen).set_requires_grad();
  const Tensor x = Tensor::uniform({32, 16}, -1, 1, gen);
  auto step = [&] {
    W.zero_grad(true);
    sum(tanh(matmul(W, x))).backward();
  };
  step();
  const BufferCacheStats warm = buffer_cache_stats();
  CHECK(warm.cached_bytes > 0);
  step();
  const BufferCacheStats after = buffer_cache_stats();
  CHECK(after.hits > warm.hits);
  CHECK(after.misses - warm.misses <= 1);  // at most the gradient kept in .grad() needs a new buffer
  CHECK(after.cached_bytes <= after.limit_bytes);
  release_buffer_cache();
  CHECK(buffer_cache_stats().cached_bytes == 0);
  // Limit 0: nothing is kept.
  set_buffer_cache_limit(0);
  step();
  CHECK(buffer_cache_stats().cached_bytes == 0);
  set_buffer_cache_limit(limit_before);
}

TEST_CASE("fast paths: affine equals matmul + bias as composed ops, in value and gradients") {
  Generator gen(16);
  for (int kind = 0; kind < 5; ++kind) {  // bias (m,), bias (m, 1), base (m, n), vector x with bias (m,), bias and base
    const bool vec = kind == 3;
    const Shape sx = vec ? Shape{5} : Shape{5, 3};
    const Shape sb = kind == 1 ? Shape{4, 1} : kind == 2 ? Shape{4, 3} : Shape{4};
    const Tensor W0 = Tensor::uniform({4, 5}, -1, 1, gen, float64), x0 = Tensor::uniform(sx, -1, 1, gen, float64);
    const Tensor b0 = Tensor::uniform(sb, -1, 1, gen, float64), seed = Tensor::uniform(vec ? Shape{4} : Shape{4, 3}, -1, 1, gen, float64);
    Tensor W = W0.clone().set_requires_grad(), x = x0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
    const Tensor base0 = Tensor::uniform({4, 3}, -1, 1, gen, float64);
    Tensor base = base0.clone().set_requires_grad(), base2 = base0.clone().set_requires_grad();
    const Tensor fused = kind == 4 ? affine(W, x, b, base) : affine(W, x, b);
    backward(fused, seed);
    Tensor W2 = W0.clone().set_requires_grad(), x2 = x0.clone().set_requires_grad(), b2 = b0.clone().set_requires_grad();
    const Tensor prod = vec ? reshape(matmul(W2, reshape(x2, {5, 1})), {4}) : matmul(W2, x2);
    const Tensor composed = kind == 0 ? prod + reshape(b2, {4, 1}) : kind == 4 ? prod + reshape(b2, {4, 1}) + base2 : prod + b2;
    backward(composed, seed);
    auto same = [](const Tensor& p, const Tensor& q) {
      REQUIRE(p.shape() == q.shape());
      const std::vector<double> a = p.to_vector(), c = q.to_vector();
      for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == doctest::Approx(c[i]).epsilon(1e-14));
    };
    same(fused, composed);
    same(W.grad(), W2.grad());
    same(x.grad(), x2.grad());
    same(b.grad(), b2.grad());
    if (kind == 4) same(base.grad(), base2.grad());
  }
}

TEST_CASE("fast paths: affine names the op and the shapes when they do not fit") {
  const Tensor W = Tensor::ones({4, 5}), x = Tensor::ones({5, 3});
  CHECK(message_of<ShapeError>([&] { affine(W, Tensor::ones({6, 3})); }) ==
        "affine: W (4, 5) and x (6, 3): x.shape[0] (6) must equal W.shape[1] (5)");
  CHECK(message_of<ShapeError>([&] { affine(W, x, Tensor::ones({3})); }) ==
        "affine: W (4, 5) and x (5, 3) and b (3,): b must be (4,) or (4, 1), one bias per row, or (4, 3), the "
        "output's shape");
  CHECK(contains(message_of<ShapeError>([&] { affine(Tensor::ones({4}), x); }), "W must be a 2-D"));
  CHECK(contains(message_of<DtypeError>([&] { affine(W, Tensor::ones({5, 3}, float64)); }), "affine"));
  CHECK(message_of<ShapeError>([&] { affine(W, x, Tensor::ones({4}), Tensor::ones({4, 2})); }) ==
        "affine: W (4, 5) and x (5, 3) and b (4,) and base (4, 2): base must have the output's shape (4, 3)");
  CHECK(contains(message_of<ShapeError>([&] { affine(W, x, Tensor::ones({4, 3}), Tensor::ones({4, 3})); }),
                 "b must be (4,) or (4, 1), one bias per row"));
}

TEST_CASE("fast paths: matmul agrees with a plain triple loop below and above the BLAS size cut-off") {
  Generator gen(17);
  // m·n·k = 24 (a plain loop inside rewind) and 720, 4096 (BLAS), every transpose combination, batched too.
  for (auto [m, k, n] : {std::tuple<std::size_t, std::size_t, std::size_t>{3, 4, 2}, {9, 10, 8}, {16, 16, 16}})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (std::size_t batch : {0, 2}) {
          Shape sa = ta ? Shape{k, m} : Shape{m, k}, sb = tb ? Shape{n, k} : Shape{k, n};
          if (batch) sa = Shape{batch, sa[0], sa[1]}, sb = Shape{batch, sb[0], sb[1]};
          const Tensor a = Tensor::uniform(sa, -1, 1, gen, float64), b = Tensor::uniform(sb, -1, 1, gen, float64);
          const std::vector<double> c = matmul(a, b, ta, tb).to_vector(), av = a.to_vector(), bv = b.to_vector();
          for (std::size_t q = 0; q < std::max<std::size_t>(batch, 1); ++q)
            for (std::size_t i = 0; i < m; ++i)
              for (std::size_t j = 0; j < n; ++j) {
                double ref = 0;
                for (std::size_t p = 0; p < k; ++p)
                  ref += av[q * m * k + (ta ? p * m + i : i * k + p)] * bv[q * k * n + (tb ? j * k + p : p * n + j)];
                CHECK(c[q * m * n + i * n + j] == doctest::Approx(ref).epsilon(1e-13));
              }
        }
}

TEST_CASE("fast paths: the vector tanh, sigmoid and exp agree with the C library at every length and in the tails") {
  // Lengths around the vector widths (4, 8 floats; 2, 4 doubles) exercise the batched body and the tail.
  for (std::size_t n : {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33, 1000})
    for (Dtype dt : {Dtype::f32, Dtype::f64}) {
      std::vector<double> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = -30.0 + 60.0 * static_cast<double>(i) / static_cast<double>(std::max<std::size_t>(n - 1, 1));
      const Tensor x = Tensor::from_vector(v, {n}, dt);
      const std::vector<double> xs = x.to_vector();  // the values as stored (float32 rounds them)
      const std::vector<double> t = tanh(x).to_vector(), s = sigmoid(x).to_vector(), e = exp(x * 0.1).to_vector();
      const std::vector<double> xe = (x * 0.1).to_vector();
      const double tol = dt == Dtype::f32 ? 4e-7 : 1e-15;
      for (std::size_t i = 0; i < n; ++i) {
        CHECK(t[i] == doctest::Approx(std::tanh(xs[i])).epsilon(tol));
        CHECK(s[i] == doctest::Approx(1.0 / (1.0 + std::exp(-xs[i]))).epsilon(tol));
        CHECK(e[i] == doctest::Approx(std::exp(xe[i])).epsilon(tol));
      }
    }
  // σ keeps its relative precision far into the left tail, and saturates cleanly on the right.
  const std::vector<double> tail = sigmoid(Tensor::from_vector(std::vector<double>{-40, -700, 40}, {3}, Dtype::f64)).to_vector();
  CHECK(std::fabs(tail[0] - 4.248354255291589e-18) <= 1e-14 * 4.248354255291589e-18);  // relative
  CHECK(std::fabs(tail[1] - std::exp(-700.0)) <= 1e-12 * std::exp(-700.0));
  CHECK(tail[2] == 1.0);
  const std::vector<double> tail32 = sigmoid(Tensor::from_vector(std::vector<double>{-80, -200, 200}, {3}, Dtype::f32)).to_vector();
  CHECK(std::fabs(tail32[0] - std::exp(-80.0)) <= 1e-5 * std::exp(-80.0));
  CHECK(tail32[1] == 0.0);
  CHECK(tail32[2] == 1.0);
}

TEST_CASE("fast paths: split_steps of data copies each step out, the same values as of a recorded sequence") {
  Generator gen(18);
  for (Dtype dt : {Dtype::f32, Dtype::f64}) {
    const Tensor data = Tensor::uniform({4, 3, 2}, -1, 1, gen, dt);
    const Tensor recorded = data.clone().set_requires_grad();
    const std::vector<Tensor> a = split_steps(data), b = split_steps(recorded);
    REQUIRE(a.size() == 4);
    for (std::size_t t = 0; t < 4; ++t) {
      CHECK(a[t].shape() == Shape{3, 2});
      CHECK(!a[t].requires_grad());
      CHECK(b[t].requires_grad());
      CHECK(a[t].to_vector() == b[t].to_vector());
    }
  }
}
