// Forward values of the ops against independent references: numbers worked out by hand, or loops
// and std:: math over the raw input data — never an op's own output captured once (STYLE rule 15).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

Tensor t64(const std::vector<double>& v, const Shape& s) { return Tensor::from_vector(v, s, float64); }

/// 0, 1, …, n−1 in `shape`, float64: every element's value is its flat position.
Tensor iota(const Shape& s, Dtype dtype = float64) { return reshape(Tensor::arange(s.numel(), dtype), s); }

/// Checks shape and every value (relative tolerance `tol`, absolute tolerance tol as well).
void check_values(const Tensor& t, const Shape& shape, const std::vector<double>& expected, double tol = 1e-12) {
  REQUIRE_MESSAGE(t.shape() == shape, "shape " << t.shape().str() << ", expected " << shape.str());
  const std::vector<double> got = t.to_vector();
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(got[i] == doctest::Approx(expected[i]).epsilon(tol).scale(1.0));
  }
}

/// Row-major flat position of a multi-index.
std::size_t flat(const Shape& s, const std::vector<std::size_t>& idx) {
  std::size_t f = 0;
  for (std::size_t d = 0; d < s.ndim(); ++d) f = f * s[d] + idx[d];
  return f;
}

/// The multi-index of flat position f.
std::vector<std::size_t> unflat(const Shape& s, std::size_t f) {
  std::vector<std::size_t> idx(s.ndim());
  for (std::size_t d = s.ndim(); d-- > 0;) {
    idx[d] = f % s[d];
    f /= s[d];
  }
  return idx;
}

/// NumPy broadcasting by hand: the value of `x` (data, shape) seen at `out_idx` of a larger shape.
double broadcast_at(const std::vector<double>& data, const Shape& s, const std::vector<std::size_t>& out_idx) {
  std::vector<std::size_t> idx(s.ndim());
  const std::size_t lead = out_idx.size() - s.ndim();
  for (std::size_t d = 0; d < s.ndim(); ++d) idx[d] = s[d] == 1 ? 0 : out_idx[lead + d];
  return data[flat(s, idx)];
}

/// op(A)·op(B) by the textbook triple loop over raw row-major data, batched over a leading axis if 3-D.
std::vector<double> naive_matmul(const Tensor& A, const Tensor& B, bool ta, bool tb) {
  const Shape sa = A.shape(), sb = B.shape();
  const std::vector<double> a = A.to_vector(), b = B.to_vector();
  const std::size_t r = sa.ndim() - 2, batch = r ? sa[0] : 1;
  const std::size_t ra = sa[r], ca = sa[r + 1], rb = sb[r], cb = sb[r + 1];
  const std::size_t m = ta ? ca : ra, k = ta ? ra : ca, n = tb ? rb : cb;
  std::vector<double> c(batch * m * n, 0.0);
  for (std::size_t q = 0; q < batch; ++q)
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::size_t p = 0; p < k; ++p) {
          const double x = ta ? a[q * ra * ca + p * ca + i] : a[q * ra * ca + i * ca + p];
          const double y = tb ? b[q * rb * cb + j * cb + p] : b[q * rb * cb + p * cb + j];
          acc += x * y;
        }
        c[(q * m + i) * n + j] = acc;
      }
  return c;
}

}  // namespace

// ---- arithmetic and broadcasting ----

TEST_CASE("add(a, b): broadcasting (3, 1) with (1, 4), (4,) with (2, 3, 4), () with (2, 3)") {
  SUBCASE("(3, 1) + (1, 4) → (3, 4), out[i][j] = a[i] + b[j]") {
    Tensor a = t64({1, 2, 3}, {3, 1}), b = t64({10, 20, 30, 40}, {1, 4});
    check_values(add(a, b), {3, 4}, {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
    check_values(add(b, a), {3, 4}, {11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43});
  }
  SUBCASE("(4,) + (2, 3, 4): the vector repeats along both leading dimensions") {
    Tensor a = t64({0.5, -1, 2, 4}, {4}), b = iota({2, 3, 4});
    const std::vector<double> bv = b.to_vector(), av = a.to_vector();
    std::vector<double> expected(24);
    for (std::size_t f = 0; f < 24; ++f) expected[f] = bv[f] + av[f % 4];
    check_values(add(a, b), {2, 3, 4}, expected);
  }
  SUBCASE("() + (2, 3)") {
    check_values(add(Tensor::scalar(100, float64), iota({2, 3})), {2, 3}, {100, 101, 102, 103, 104, 105});
    check_values(add(iota({2, 3}), Tensor::scalar(100, float64)), {2, 3}, {100, 101, 102, 103, 104, 105});
  }
  SUBCASE("(2, 1, 4) + (3, 1) → (2, 3, 4), against broadcasting by hand") {
    Generator gen(1);
    Tensor a = Tensor::randn({2, 1, 4}, gen, float64), b = Tensor::randn({3, 1}, gen, float64);
    const Shape out{2, 3, 4};
    std::vector<double> expected(out.numel());
    for (std::size_t f = 0; f < expected.size(); ++f)
      expected[f] = broadcast_at(a.to_vector(), a.shape(), unflat(out, f)) +
                    broadcast_at(b.to_vector(), b.shape(), unflat(out, f));
    check_values(add(a, b), out, expected);
  }
  SUBCASE("float32") {
    Tensor a = Tensor::from_vector(std::vector<double>{1.5, 2.5}, {2, 1}), b = Tensor::from_vector(std::vector<double>{1, 2, 3}, {3});
    Tensor c = add(a, b);
    CHECK(c.dtype() == float32);
    check_values(c, {2, 3}, {2.5, 3.5, 4.5, 3.5, 4.5, 5.5});
  }
}

TEST_CASE("sub, mul, div, pow(x, p tensor): broadcasting against std:: on the raw data") {
  Generator gen(2);
  Tensor a = Tensor::uniform({2, 3, 1}, 0.5, 2, gen, float64), b = Tensor::uniform({4}, 0.5, 2, gen, float64);
  const Shape out{2, 3, 4};
  const std::vector<double> av = a.to_vector(), bv = b.to_vector();
  auto expect = [&](auto op) {
    std::vector<double> e(out.numel());
    for (std::size_t f = 0; f < e.size(); ++f)
      e[f] = op(broadcast_at(av, a.shape(), unflat(out, f)), broadcast_at(bv, b.shape(), unflat(out, f)));
    return e;
  };
  check_values(sub(a, b), out, expect([](double x, double y) { return x - y; }));
  check_values(sub(b, a), out, expect([](double x, double y) { return y - x; }));
  check_values(mul(a, b), out, expect([](double x, double y) { return x * y; }));
  check_values(div(a, b), out, expect([](double x, double y) { return x / y; }));
  check_values(div(b, a), out, expect([](double x, double y) { return y / x; }));
  check_values(pow(a, b), out, expect([](double x, double y) { return std::pow(x, y); }));
}

TEST_CASE("operators with numbers: 2 - x, x / 4, 3 * x, x + 1") {
  Tensor x = t64({1, -2, 8}, {3});
  check_values(2.0 - x, {3}, {1, 4, -6});
  check_values(x / 4.0, {3}, {0.25, -0.5, 2});
  check_values(3.0 * x, {3}, {3, -6, 24});
  check_values(x + 1.0, {3}, {2, -1, 9});
  check_values(8.0 / x, {3}, {8, -4, 1});
  check_values(-x, {3}, {-1, 2, -8});
}

// ---- elementwise functions ----

TEST_CASE("elementwise functions against std:: math, float64 and float32") {
  const std::vector<double> v{-3.5, -1, -0.25, 0, 0.3, 1, 2.75};
  const std::vector<double> pos{0.01, 0.3, 1, 2.5, 100};
  struct Fn {
    const char* name;
    Tensor (*op)(const Tensor&);
    double (*ref)(double);
    bool positive;
  };
  const Fn fns[] = {
      {"exp", [](const Tensor& x) { return exp(x); }, [](double x) { return std::exp(x); }, false},
      {"log", [](const Tensor& x) { return log(x); }, [](double x) { return std::log(x); }, true},
      {"tanh", [](const Tensor& x) { return tanh(x); }, [](double x) { return std::tanh(x); }, false},
      {"sigmoid", [](const Tensor& x) { return sigmoid(x); }, [](double x) { return 1 / (1 + std::exp(-x)); }, false},
      {"relu", [](const Tensor& x) { return relu(x); }, [](double x) { return x > 0 ? x : 0.0; }, false},
      {"abs", [](const Tensor& x) { return abs(x); }, [](double x) { return std::fabs(x); }, false},
      {"sqrt", [](const Tensor& x) { return sqrt(x); }, [](double x) { return std::sqrt(x); }, true},
      {"neg", [](const Tensor& x) { return neg(x); }, [](double x) { return -x; }, false},
      {"square", [](const Tensor& x) { return square(x); }, [](double x) { return x * x; }, false},
      {"pow 2.5", [](const Tensor& x) { return pow(x, 2.5); }, [](double x) { return std::pow(x, 2.5); }, true},
      {"pow -1", [](const Tensor& x) { return pow(x, -1.0); }, [](double x) { return 1 / x; }, true},
      {"pow 3", [](const Tensor& x) { return pow(x, 3.0); }, [](double x) { return x * x * x; }, false},
      {"clamp", [](const Tensor& x) { return clamp(x, -1, 0.5); }, [](double x) { return std::min(std::max(x, -1.0), 0.5); }, false},
      {"log1p", [](const Tensor& x) { return log1p(x); }, [](double x) { return std::log1p(x); }, true},
      {"softplus", [](const Tensor& x) { return softplus(x); }, [](double x) { return std::log1p(std::exp(x)); }, false},
      {"log_sigmoid", [](const Tensor& x) { return log_sigmoid(x); }, [](double x) { return -std::log1p(std::exp(-x)); }, false},
  };
  for (const Fn& fn : fns) {
    const std::vector<double>& in = fn.positive ? pos : v;
    std::vector<double> expected;
    for (double x : in) expected.push_back(fn.ref(x));
    SUBCASE(fn.name) {
      const Shape s{in.size()};
      Tensor y64 = fn.op(t64(in, s));
      CHECK(y64.dtype() == float64);
      check_values(y64, s, expected, 1e-12);
      Tensor y32 = fn.op(Tensor::from_vector(in, s, float32));
      CHECK(y32.dtype() == float32);
      check_values(y32, s, expected, 1e-5);
    }
  }
}

TEST_CASE("clamp(x, lo, hi): values at and beyond the bounds") {
  check_values(clamp(t64({-5, -1, 0, 1, 5}, {5}), -1, 1), {5}, {-1, -1, 0, 1, 1});
  check_values(clamp(t64({-5, 3}, {2}), 2, 2), {2}, {2, 2});
}

// ---- linear algebra ----

TEST_CASE("matmul(a, b, transpose_a, transpose_b): against a naive triple loop, all flags, 2-D and batched") {
  Generator gen(3);
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const std::size_t batch : {std::size_t{0}, std::size_t{3}}) {
        const std::string name = std::string("ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0") +
                                 (batch ? " batched" : " 2-D");
        SUBCASE(name.c_str()) {
          const std::size_t m = 3, k = 5, n = 2;
          Shape sa = ta ? Shape{k, m} : Shape{m, k}, sb = tb ? Shape{n, k} : Shape{k, n};
          if (batch) sa = Shape{batch, sa[0], sa[1]}, sb = Shape{batch, sb[0], sb[1]};
          for (const Dtype dtype : {float64, float32}) {
            Tensor a = Tensor::randn(sa, gen, dtype), b = Tensor::randn(sb, gen, dtype);
            Tensor c = matmul(a, b, ta, tb);
            CHECK(c.dtype() == dtype);
            check_values(c, batch ? Shape{batch, m, n} : Shape{m, n}, naive_matmul(a, b, ta, tb),
                         dtype == float64 ? 1e-12 : 1e-5);
          }
        }
      }
}

TEST_CASE("matmul: a hand-worked 2×2 product and size-1 dimensions") {
  check_values(matmul(t64({1, 2, 3, 4}, {2, 2}), t64({5, 6, 7, 8}, {2, 2})), {2, 2}, {19, 22, 43, 50});
  check_values(matmul(t64({1, 2, 3, 4}, {2, 2}), t64({5, 6, 7, 8}, {2, 2}), true, false), {2, 2}, {26, 30, 38, 44});
  check_values(matmul(t64({1, 2, 3}, {1, 3}), t64({4, 5, 6}, {3, 1})), {1, 1}, {32});                // inner
  check_values(matmul(t64({1, 2, 3}, {3, 1}), t64({4, 5}, {1, 2})), {3, 2}, {4, 5, 8, 10, 12, 15});  // outer
}

// ---- shape ----

TEST_CASE("permute(x, axes): out[k][i][j] = x[i][j][k]") {
  Tensor x = iota({2, 3, 4});
  Tensor y = permute(x, {2, 0, 1});
  REQUIRE(y.shape() == Shape{4, 2, 3});
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j)
      for (std::size_t k = 0; k < 4; ++k) CHECK(y.at({k, i, j}) == x.at({i, j, k}));
  Tensor z = permute(x, {-1, 0, -2});  // the same permutation, negative axes
  CHECK(z.to_vector() == y.to_vector());
  check_values(transpose(t64({1, 2, 3, 4, 5, 6}, {2, 3})), {3, 2}, {1, 4, 2, 5, 3, 6});
}

TEST_CASE("reshape, unsqueeze, squeeze keep the row-major order") {
  Tensor x = iota({2, 3});
  check_values(reshape(x, {3, 2}), {3, 2}, {0, 1, 2, 3, 4, 5});
  check_values(reshape(x, {6}), {6}, {0, 1, 2, 3, 4, 5});
  check_values(unsqueeze(x, 1), {2, 1, 3}, {0, 1, 2, 3, 4, 5});
  check_values(unsqueeze(x, -1), {2, 3, 1}, {0, 1, 2, 3, 4, 5});
  check_values(unsqueeze(Tensor::scalar(7, float64), 0), {1}, {7});
  check_values(squeeze(reshape(x, {2, 1, 3}), 1), {2, 3}, {0, 1, 2, 3, 4, 5});
}

TEST_CASE("broadcast_to(x, shape): copies along size-1 and new leading dimensions") {
  check_values(broadcast_to(t64({1, 2}, {2, 1}), {3, 2, 2}), {3, 2, 2}, {1, 1, 2, 2, 1, 1, 2, 2, 1, 1, 2, 2});
  check_values(broadcast_to(Tensor::scalar(5, float64), {2}), {2}, {5, 5});
  check_values(broadcast_to(t64({1, 2, 3}, {3}), {2, 3}), {2, 3}, {1, 2, 3, 1, 2, 3});
}

TEST_CASE("slice(x, axis, start, stop, step): element placement") {
  Tensor x = iota({2, 3, 4});  // x[i][j][k] = 12i + 4j + k
  SUBCASE("last axis, step 2: k = 1, 3") {
    Tensor y = slice(x, 2, 1, 4, 2);
    REQUIRE(y.shape() == Shape{2, 3, 2});
    for (std::size_t i = 0; i < 2; ++i)
      for (std::size_t j = 0; j < 3; ++j)
        for (std::size_t c = 0; c < 2; ++c) CHECK(y.at({i, j, c}) == 12.0 * i + 4.0 * j + (1 + 2 * c));
  }
  SUBCASE("middle axis, step 3 from 0: j = 0 only; negative axis") {
    check_values(slice(x, -2, 0, 3, 3), {2, 1, 4}, {0, 1, 2, 3, 12, 13, 14, 15});
  }
  SUBCASE("first axis, step 1") { check_values(slice(x, 0, 1, 2), {1, 3, 4}, std::vector<double>{12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23}); }
  SUBCASE("empty slice") { CHECK(slice(x, 1, 2, 2).shape() == Shape{2, 0, 4}); }
  SUBCASE("step past the end: [0:4:3] takes k = 0, 3") {
    check_values(slice(t64({10, 11, 12, 13}, {4}), 0, 0, 4, 3), {2}, {10, 13});
  }
}

TEST_CASE("unslice(g, shape, axis, start, stop, step): g placed at the sliced positions, zeros elsewhere") {
  check_values(unslice(t64({1, 2, 3, 4}, {2, 2}), {2, 5}, 1, 1, 5, 2), {2, 5}, {0, 1, 0, 2, 0, 0, 3, 0, 4, 0});
  check_values(unslice(t64({7, 8}, {2}), {4}, 0, 2, 4), {4}, {0, 0, 7, 8});
}

TEST_CASE("concat(xs, axis) and split/chunk: element placement") {
  Tensor a = t64({1, 2}, {2, 1}), b = t64({3, 4, 5, 6}, {2, 2}), c = t64({7, 8}, {2, 1});
  check_values(concat({a, b, c}, 1), {2, 4}, {1, 3, 4, 7, 2, 5, 6, 8});
  check_values(concat({a, c}, 0), {4, 1}, {1, 2, 7, 8});
  check_values(concat({a, c}, -1), {2, 2}, {1, 7, 2, 8});
  check_values(concat({b}, 0), {2, 2}, {3, 4, 5, 6});

  Tensor x = iota({2, 5});
  const std::vector<Tensor> p = split(x, {1, 3, 1}, 1);
  REQUIRE(p.size() == 3);
  check_values(p[0], {2, 1}, {0, 5});
  check_values(p[1], {2, 3}, {1, 2, 3, 6, 7, 8});
  check_values(p[2], {2, 1}, {4, 9});

  const std::vector<Tensor> q = chunk(iota({7}), 3);  // like torch.chunk: 3, 3, 1
  REQUIRE(q.size() == 3);
  check_values(q[0], {3}, {0, 1, 2});
  check_values(q[1], {3}, {3, 4, 5});
  check_values(q[2], {1}, {6});
  CHECK(chunk(iota({6}), 4).size() == 3);  // torch.chunk(arange(6), 4) gives 3 pieces of 2
}

TEST_CASE("stack(xs, axis): a new axis at 0, 1 and the end") {
  Tensor a = t64({1, 2, 3}, {3}), b = t64({4, 5, 6}, {3});
  check_values(stack({a, b}, 0), {2, 3}, {1, 2, 3, 4, 5, 6});
  check_values(stack({a, b}, 1), {3, 2}, {1, 4, 2, 5, 3, 6});
  check_values(stack({a, b}, -1), {3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor m = iota({2, 2}), n = 10.0 + iota({2, 2});
  check_values(stack({m, n}, 1), {2, 2, 2}, {0, 1, 10, 11, 2, 3, 12, 13});
  check_values(stack({Tensor::scalar(1, float64), Tensor::scalar(2, float64)}, 0), {2}, {1, 2});
}

// ---- reductions ----

TEST_CASE("sum(x, axes, keepdims): against loops") {
  Tensor x = iota({2, 3, 4});  // x[i][j][k] = 12i + 4j + k
  auto ref = [](bool si, bool sj, bool sk) {
    // Sum over the flagged axes, the kept ones in order.
    std::vector<double> out;
    for (std::size_t i = 0; i < (si ? 1u : 2u); ++i)
      for (std::size_t j = 0; j < (sj ? 1u : 3u); ++j)
        for (std::size_t k = 0; k < (sk ? 1u : 4u); ++k) {
          double acc = 0;
          for (std::size_t a = 0; a < 2; ++a)
            for (std::size_t b = 0; b < 3; ++b)
              for (std::size_t c = 0; c < 4; ++c)
                if ((si || a == i) && (sj || b == j) && (sk || c == k)) acc += 12.0 * a + 4.0 * b + c;
          out.push_back(acc);
        }
    return out;
  };
  check_values(sum(x), {}, {276});
  check_values(sum(x, {0}), {3, 4}, ref(true, false, false));
  check_values(sum(x, {1}), {2, 4}, ref(false, true, false));
  check_values(sum(x, {1}, true), {2, 1, 4}, ref(false, true, false));
  check_values(sum(x, {-1}), {2, 3}, ref(false, false, true));
  check_values(sum(x, {0, 2}), {3}, ref(true, false, true));
  check_values(sum(x, {2, 0}, true), {1, 3, 1}, ref(true, false, true));
  check_values(sum(x, {0, 1, 2}, true), {1, 1, 1}, {276});
  check_values(sum(x, {}), {2, 3, 4}, x.to_vector());
  check_values(mean(x), {}, {11.5});
  check_values(mean(x, {1}), {2, 4}, {4, 5, 6, 7, 16, 17, 18, 19});
  check_values(mean(x, {0, -1}, true), {1, 3, 1}, {7.5, 11.5, 15.5});
}

TEST_CASE("max/min(x, axis, keepdims): against loops") {
  Generator gen(4);
  Tensor x = Tensor::randn({3, 4, 2}, gen, float64);
  const Shape s = x.shape();
  const std::vector<double> v = x.to_vector();
  for (int axis = 0; axis < 3; ++axis) {
    const std::string name = "axis " + std::to_string(axis);
    SUBCASE(name.c_str()) {
      Shape kept = s, reduced;
      kept[axis] = 1;
      for (int d = 0; d < 3; ++d)
        if (d != axis) reduced.push_back(s[d]);
      std::vector<double> mx(kept.numel(), -std::numeric_limits<double>::infinity());
      std::vector<double> mn(kept.numel(), std::numeric_limits<double>::infinity());
      for (std::size_t f = 0; f < v.size(); ++f) {
        std::vector<std::size_t> idx = unflat(s, f);
        idx[axis] = 0;
        const std::size_t o = flat(kept, idx);
        mx[o] = std::max(mx[o], v[f]);
        mn[o] = std::min(mn[o], v[f]);
      }
      check_values(max(x, axis), reduced, mx);
      check_values(max(x, axis, true), kept, mx);
      check_values(max(x, axis - 3), reduced, mx);
      check_values(min(x, axis), reduced, mn);
      check_values(min(x, axis, true), kept, mn);
    }
  }
  check_values(max(t64({2, 7, 7, 1}, {4}), 0), {}, {7});  // ties: the value is the max either way
}

TEST_CASE("sum_to_shape(g, shape): sums the broadcast dimensions away") {
  Tensor g = iota({2, 3, 4});
  check_values(sum_to_shape(g, {3, 1}), {3, 1}, {0 + 1 + 2 + 3 + 12 + 13 + 14 + 15, 4 + 5 + 6 + 7 + 16 + 17 + 18 + 19,
                                                 8 + 9 + 10 + 11 + 20 + 21 + 22 + 23});
  check_values(sum_to_shape(g, {4}), {4}, {60, 66, 72, 78});  // Σᵢⱼ 12i + 4j + k = 60 + 6k
  check_values(sum_to_shape(g, {}), {}, {276});
  CHECK(sum_to_shape(g, {2, 3, 4}).to_vector() == g.to_vector());
}

// ---- indexing ----

TEST_CASE("index_select and index_add: repeated indices pick twice and add up") {
  Tensor W = iota({4, 2});  // rows [0 1] [2 3] [4 5] [6 7]
  check_values(index_select(W, 0, {3, 0, 3, 1}), {4, 2}, {6, 7, 0, 1, 6, 7, 2, 3});
  check_values(index_select(W, 1, {1, 1, 0}), {4, 3}, {1, 1, 0, 3, 3, 2, 5, 5, 4, 7, 7, 6});
  check_values(index_select(W, 0, {}), {0, 2}, {});
  Tensor g = t64({1, 2, 10, 20, 100, 200}, {3, 2});
  check_values(index_add(g, {4, 2}, 0, {2, 0, 2}), {4, 2}, {10, 20, 0, 0, 101, 202, 0, 0});
  check_values(index_add(t64({1, 2, 3}, {1, 3}), {1, 2}, 1, {1, 1, 0}), {1, 2}, {3, 3});
}

TEST_CASE("gather and scatter_add: PyTorch's gather placement — scatter_add adds repeats") {
  Tensor x = t64({10, 11, 12, 20, 21, 22}, {2, 3});
  // out[i][j] = x[i][index[i][j]]
  check_values(gather(x, 1, {2, 0, 1, 1}, {2, 2}), {2, 2}, {12, 10, 21, 21});
  // out[i][j] = x[index[i][j]][j]
  check_values(gather(x, 0, {1, 0, 1}, {1, 3}), {1, 3}, {20, 11, 22});
  check_values(gather(x, -1, {0, 2}, {2, 1}), {2, 1}, {10, 22});
  // scatter_add: out[i][index[i][j]] += g[i][j]
  check_values(scatter_add(t64({1, 2, 3, 4}, {2, 2}), {2, 3}, 1, {2, 0, 1, 1}, {2, 2}), {2, 3}, {2, 0, 1, 0, 7, 0});
  check_values(scatter_add(t64({5, 6, 7}, {1, 3}), {2, 3}, 0, {1, 0, 1}, {1, 3}), {2, 3}, {0, 6, 0, 5, 0, 7});
}

// ---- stable compositions ----

TEST_CASE("softmax(x, axis): rows sum to 1 and match exp(x)/Σexp(x)") {
  Generator gen(5);
  Tensor x = Tensor::randn({3, 5}, gen, float64) * 3.0;
  const std::vector<double> v = x.to_vector();
  std::vector<double> expected(15);
  for (std::size_t i = 0; i < 3; ++i) {
    double z = 0;
    for (std::size_t j = 0; j < 5; ++j) z += std::exp(v[i * 5 + j]);
    for (std::size_t j = 0; j < 5; ++j) expected[i * 5 + j] = std::exp(v[i * 5 + j]) / z;
  }
  Tensor y = softmax(x, -1);
  check_values(y, {3, 5}, expected);
  check_values(sum(y, {1}), {3}, {1, 1, 1});
  check_values(sum(softmax(x, 0), {0}), {5}, {1, 1, 1, 1, 1});
  std::vector<double> logs;
  for (double e : expected) logs.push_back(std::log(e));
  check_values(log_softmax(x, 1), {3, 5}, logs, 1e-11);
}

TEST_CASE("logsumexp, softmax, softplus, log_sigmoid: finite and right at ±1000") {
  for (const Dtype dtype : {float64, float32}) {
    const double tol = dtype == float64 ? 1e-12 : 1e-6;
    // log_softmax is x − logsumexp(x): at |x| = 1000 the subtraction cancels down to the resolution
    // of the inputs themselves (float32 spacing at 1000 is 6.1e-5), so that is the tolerance there.
    const double cancel_tol = dtype == float64 ? 1e-12 : 2e-4;
    SUBCASE(dtype_name(dtype)) {
      Tensor big = Tensor::from_vector(std::vector<double>{1000, 1000, -1000, -1000, 1000, -1000}, {3, 2}, dtype);
      check_values(logsumexp(big, 1), {3}, {1000 + std::log(2.0), -1000 + std::log(2.0), 1000}, tol);
      check_values(logsumexp(big, 1, true), {3, 1}, {1000 + std::log(2.0), -1000 + std::log(2.0), 1000}, tol);
      check_values(softmax(big, 1), {3, 2}, {0.5, 0.5, 0.5, 0.5, 1, 0}, cancel_tol);
      check_values(log_softmax(big, 1), {3, 2}, {-std::log(2.0), -std::log(2.0), -std::log(2.0), -std::log(2.0), 0, -2000},
                   cancel_tol);
      for (double v : softmax(big, 1).to_vector()) CHECK(std::isfinite(v));

      Tensor x = Tensor::from_vector(std::vector<double>{-1000, -30, 0, 30, 1000}, {5}, dtype);
      // softplus(x) = log(1 + eˣ): eˣ below 1e-13 at −30, x itself (to 1e-13) at 30.
      const std::vector<double> sp{0, std::exp(-30.0), std::log(2.0), 30, 1000};
      Tensor y = softplus(x);
      for (double v : y.to_vector()) CHECK(std::isfinite(v));
      check_values(y, {5}, sp, tol);
      Tensor ls = log_sigmoid(x);
      for (double v : ls.to_vector()) CHECK(std::isfinite(v));
      check_values(ls, {5}, {-1000, -30, -std::log(2.0), -std::exp(-30.0), 0}, tol);
      // Far into the tail the value keeps its relative precision (log1p): softplus(−40) = e⁻⁴⁰(1 − …).
      const double tail = softplus(Tensor::from_vector(std::vector<double>{-40}, {1}, dtype)).item();
      const double tail_ref = std::log1p(std::exp(-40.0));  // 4.25e-18
      CHECK(std::fabs(tail - tail_ref) <= (dtype == float64 ? 1e-14 : 1e-6) * tail_ref);
      // The branch not taken cannot overflow into the gradient: d softplus / dx at ±1000 is 0 and 1.
      Tensor xg = Tensor::from_vector(std::vector<double>{-1000, 1000}, {2}, dtype).set_requires_grad();
      sum(softplus(xg)).backward();
      CHECK(xg.grad().to_vector() == std::vector<double>{0, 1});
    }
  }
}

TEST_CASE("sigmoid(±100): finite, saturated, gradient finite") {
  for (const Dtype dtype : {float64, float32}) {
    SUBCASE(dtype_name(dtype)) {
      Tensor x = Tensor::from_vector(std::vector<double>{-100, -20, 0, 20, 100}, {5}, dtype).set_requires_grad();
      Tensor y = sigmoid(x);
      const std::vector<double> v = y.to_vector();
      for (double e : v) CHECK(std::isfinite(e));
      CHECK(v[0] >= 0);
      CHECK(v[0] <= 1e-30);  // σ(−100) = 3.7e-44
      const double s20 = 1 / (1 + std::exp(20.0));  // σ(−20) = 2.06e-9
      if (dtype == float64) CHECK(std::abs(v[1] - s20) <= 1e-6 * s20);
      else CHECK(std::abs(v[1] - s20) <= 1e-7);
      CHECK(v[2] == 0.5);
      CHECK(v[3] == doctest::Approx(1 / (1 + std::exp(-20.0))));
      CHECK(v[4] == 1.0);
      sum(y).backward();
      for (double g : x.grad().to_vector()) CHECK(std::isfinite(g));
      CHECK(x.grad().to_vector()[2] == doctest::Approx(0.25));
    }
  }
}

// ---- choosing ----

TEST_CASE("where(cond, a, b) and masked_fill(x, mask, value), broadcasting") {
  Tensor cond = t64({1, 0, 2}, {3});  // nonzero is true
  Tensor a = t64({1, 2, 3, 4, 5, 6}, {2, 3}), b = t64({-1, -2}, {2, 1});
  check_values(where(cond, a, b), {2, 3}, {1, -1, 3, 4, -2, 6});
  check_values(where(t64({0, 1}, {2, 1}), Tensor::scalar(9, float64), t64({7, 8}, {2})), {2, 2}, {7, 8, 9, 9});
  // cond of another dtype than the operands is only a mask.
  check_values(where(Tensor::from_vector(std::vector<double>{1, 0}, {2}, float32), t64({1, 2}, {2}), t64({3, 4}, {2})),
               {2}, {1, 4});
  check_values(masked_fill(a, t64({0, 1, 0}, {3}), -5), {2, 3}, {1, -5, 3, 4, -5, 6});
  check_values(masked_fill(a, t64({1, 0}, {2, 1}), 0.5), {2, 3}, {0.5, 0.5, 0.5, 4, 5, 6});
}

// ---- dtypes ----

TEST_CASE("cast(x, dtype): float32 ↔ float64") {
  Tensor d = t64({0.1, -2.5, 1e-3, 3e38}, {2, 2});
  Tensor f = cast(d, float32);
  CHECK(f.dtype() == float32);
  CHECK(f.shape() == Shape{2, 2});
  const std::vector<double> fv = f.to_vector();
  CHECK(fv[0] == static_cast<double>(0.1f));
  CHECK(fv[0] != 0.1);  // really rounded to float32
  CHECK(fv[1] == -2.5);
  CHECK(fv[2] == static_cast<double>(1e-3f));
  CHECK(fv[3] == static_cast<double>(3e38f));
  Tensor back = cast(f, float64);
  CHECK(back.dtype() == float64);
  CHECK(back.to_vector() == fv);  // float32 → float64 is exact
  CHECK(d.to(float32).to_vector() == fv);
  CHECK(cast(d, float64).same(d));  // already float64: the same handle
}
