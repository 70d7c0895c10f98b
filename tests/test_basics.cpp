// The basics a NumPy or PyTorch user reaches for first: full-tensor max/min, argmax/argmin,
// comparisons, linspace, and printing a model or a tape with <<.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include <rewind.hpp>

#include "support.hpp"

using namespace rwd;

namespace {

const double NaN = std::numeric_limits<double>::quiet_NaN();

Tensor vec(std::vector<double> v, const Shape& s, Dtype dt = float64) { return Tensor::from_vector(v, s, dt); }

// Brute force: index along `axis` of the first extreme of each lane (NaN first), lanes row-major.
Indices arg_brute(const Tensor& x, std::size_t axis, bool largest) {
  const Shape s = x.shape();
  const std::vector<double> v = x.to_vector();
  std::size_t outer = 1, inner = 1;
  for (std::size_t i = 0; i < axis; ++i) outer *= s[i];
  for (std::size_t i = axis + 1; i < s.ndim(); ++i) inner *= s[i];
  Indices out;
  for (std::size_t o = 0; o < outer; ++o)
    for (std::size_t r = 0; r < inner; ++r) {
      std::int64_t best = -1;
      for (std::size_t i = 0; i < s[axis]; ++i) {
        const double u = v[(o * s[axis] + i) * inner + r];
        if (std::isnan(u)) {
          best = static_cast<std::int64_t>(i);
          break;
        }
        if (best < 0 || (largest ? u > v[(o * s[axis] + best) * inner + r] : u < v[(o * s[axis] + best) * inner + r]))
          best = static_cast<std::int64_t>(i);
      }
      out.push_back(best);
    }
  return out;
}

}  // namespace

TEST_CASE("basics: max(x) and min(x) over every element, the gradient shared by the tied extremes") {
  for (Dtype dt : {float32, float64}) {
    Tensor x = vec({3, -1, 7, 7, 0, -4}, {2, 3}, dt).set_requires_grad(true);
    Tensor m = max(x);
    CHECK(m.shape() == Shape{});
    CHECK(m.item() == 7);
    m.backward();
    CHECK(x.grad().to_vector() == std::vector<double>{0, 0, 0.5, 0.5, 0, 0});  // the tie shares it (torch.max(x))
    Tensor y = vec({3, -4, 7, -4}, {4}, dt).set_requires_grad(true);
    Tensor n = min(y);
    CHECK(n.item() == -4);
    n.backward();
    CHECK(y.grad().to_vector() == std::vector<double>{0, 0.5, 0, 0.5});
  }
  CHECK(max(Tensor::scalar(2.5, float64)).item() == 2.5);
}

TEST_CASE("basics: argmax and argmin, over everything and along an axis, equal a brute force") {
  Generator gen(11);
  for (const Shape& s : {Shape{7}, Shape{3, 4}, Shape{2, 3, 5}, Shape{4, 1, 3}}) {
    // Values from a small set so that ties are common: the first of a tie must win.
    Tensor x = Tensor::uniform(s, 0, 4, gen, float64);
    std::vector<double> v = x.to_vector();
    for (double& u : v) u = std::floor(u);
    x = Tensor::from_vector(v, s, float64);
    for (std::size_t axis = 0; axis < s.ndim(); ++axis) {
      CHECK(argmax(x, static_cast<int>(axis)) == arg_brute(x, axis, true));
      CHECK(argmin(x, static_cast<int>(axis)) == arg_brute(x, axis, false));
      CHECK(argmax(x, static_cast<int>(axis) - static_cast<int>(s.ndim())) == arg_brute(x, axis, true));
    }
    const Tensor flat = Tensor::from_vector(v, Shape{s.numel()}, float64);
    CHECK(argmax(x) == arg_brute(flat, 0, true)[0]);
    CHECK(argmin(x.to(float32)) == arg_brute(flat, 0, false)[0]);
  }
  // NaN is both extremes, the first one wins (NumPy, PyTorch).
  const Tensor z = vec({1, NaN, 3, NaN}, {4}, float64);
  CHECK(argmax(z) == 1);
  CHECK(argmin(z) == 1);
  CHECK(argmax(vec({1, 5, 2, 5}, {2, 2}, float32), 0) == Indices{1, 0});
  CHECK(argmax(Tensor::scalar(3)) == 0);
  // Nothing is recorded, whatever the input.
  Tensor w = vec({1, 2}, {2}, float64).set_requires_grad(true);
  const std::size_t before = tape_stats().entries;
  CHECK(argmax(w) == 1);
  CHECK(tape_stats().entries == before);
}

TEST_CASE("basics: argmax's errors name the op and the shape") {
  CHECK(contains(message_of<ShapeError>([] { argmax(Tensor::scalar(1), 0); }), "argmax"));
  const std::string m = message_of<ShapeError>([] { argmin(Tensor::zeros({2, 3}), 2); });
  CHECK(contains(m, "argmin"));
  CHECK(contains(m, "(2, 3)"));
  CHECK(contains(message_of<TapeError>([] { argmax(Tensor(), 0); }), "undefined"));
}

TEST_CASE("basics: comparisons broadcast, give 0/1 in the operands' dtype and record nothing") {
  for (Dtype dt : {float32, float64}) {
    Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}, dt).set_requires_grad(true);
    Tensor b = vec({2, 2, 2}, {3}, dt);
    const std::size_t before = tape_stats().entries;
    const Tensor l = lt(a, b);
    CHECK(l.dtype() == dt);
    CHECK(l.shape() == Shape{2, 3});
    CHECK_FALSE(l.requires_grad());
    CHECK(l.to_vector() == std::vector<double>{1, 0, 0, 0, 0, 0});
    CHECK(le(a, b).to_vector() == std::vector<double>{1, 1, 0, 0, 0, 0});
    CHECK(gt(a, b).to_vector() == std::vector<double>{0, 0, 1, 1, 1, 1});
    CHECK(ge(a, b).to_vector() == std::vector<double>{0, 1, 1, 1, 1, 1});
    CHECK(eq(a, b).to_vector() == std::vector<double>{0, 1, 0, 0, 0, 0});
    CHECK(ne(a, b).to_vector() == std::vector<double>{1, 0, 1, 1, 1, 1});
    CHECK(gt(a, 3.5).to_vector() == std::vector<double>{0, 0, 0, 1, 1, 1});
    CHECK(eq(a, 5).to_vector() == std::vector<double>{0, 0, 0, 0, 1, 0});
    CHECK(tape_stats().entries == before);
  }
  // IEEE: NaN compares false, except ≠.
  const Tensor n = vec({NaN, 1}, {2}, float64);
  CHECK(lt(n, 2).to_vector() == std::vector<double>{0, 1});
  CHECK(ge(n, 0).to_vector() == std::vector<double>{0, 1});
  CHECK(eq(n, n).to_vector() == std::vector<double>{0, 1});
  CHECK(ne(n, n).to_vector() == std::vector<double>{1, 0});
  // Errors name the op and the shapes, or the dtypes.
  const std::string m = message_of<ShapeError>([] { lt(Tensor::zeros({2, 3}), Tensor::zeros({4})); });
  CHECK(contains(m, "lt"));
  CHECK(contains(m, "(2, 3)"));
  CHECK(contains(m, "(4,)"));
  CHECK(contains(message_of<DtypeError>([] { eq(Tensor::zeros({2}, float32), Tensor::zeros({2}, float64)); }), "eq"));
}

TEST_CASE("basics: linspace matches PyTorch's values to the last bits, both ends exact") {
  // torch.linspace(-1.3, 2.7, 7) and (0.1, 0.7, 10), float32 and float64, as PyTorch 1.13 prints them.
  const std::vector<double> a32 = {-1.2999999523162842, -0.6333332657814026, 0.033333420753479004, 0.699999988079071,
                                   1.3666666746139526,  2.0333333015441895,  2.700000047683716};
  const std::vector<double> b32 = {0.10000000149011612, 0.1666666567325592, 0.23333331942558289, 0.29999998211860657,
                                   0.36666664481163025, 0.4333333373069763, 0.5, 0.5666666626930237,
                                   0.6333333253860474,  0.699999988079071};
  const std::vector<double> a64 = {-1.3, -0.6333333333333334, 0.033333333333333215, 0.7000000000000003,
                                   1.366666666666667, 2.0333333333333337, 2.7};
  const std::vector<double> b64 = {0.1, 0.16666666666666669, 0.23333333333333334, 0.30000000000000004,
                                   0.3666666666666667, 0.43333333333333335, 0.5, 0.5666666666666667,
                                   0.6333333333333333, 0.7};
  // Equal to a few units in the last place (PyTorch's own last bits depend on its CPU's vector width),
  // both ends exact.
  const auto close = [](const Tensor& t, const std::vector<double>& want, double eps) {
    const std::vector<double> got = t.to_vector();
    REQUIRE(got.size() == want.size());
    CHECK(got.front() == want.front());
    CHECK(got.back() == want.back());
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(std::abs(got[i] - want[i]) <= 4 * eps * std::max(1.0, std::abs(want[i])));
  };
  close(Tensor::linspace(-1.3, 2.7, 7), a32, 1.2e-7);
  close(Tensor::linspace(0.1, 0.7, 10), b32, 1.2e-7);
  close(Tensor::linspace(-1.3, 2.7, 7, float64), a64, 2.3e-16);
  close(Tensor::linspace(0.1, 0.7, 10, float64), b64, 2.3e-16);
  CHECK(Tensor::linspace(2, 5, 1, float64).to_vector() == std::vector<double>{2});
  CHECK(Tensor::linspace(2, 5, 0).shape() == Shape{0});
  CHECK(Tensor::linspace(3, -3, 3, float64).to_vector() == std::vector<double>{3, 0, -3});
  CHECK(contains(message_of<ValueError>([] { Tensor::linspace(0, NaN, 3); }), "linspace"));
}

TEST_CASE("basics: a model, a tape and its statistics print with <<") {
  Chain model(Dense(2, 3, "tanh"), Dense(3, 1));
  std::ostringstream m;
  m << model;
  CHECK(m.str() == model.repr());
  CHECK(contains(m.str(), "Dense"));
  Tape tape;
  Tensor x = Tensor::ones({2, 4});
  Tensor y = sum(model.forward(x));
  std::ostringstream t, s;
  t << tape;
  s << tape_stats(tape);
  CHECK(t.str() == print_tape(tape));
  CHECK(contains(t.str(), "affine"));
  CHECK(s.str() == tape_stats(tape).str());
  CHECK_FALSE(s.str().empty());
}

TEST_CASE("basics: max and min along an axis and over everything propagate NaN, the gradient to the first NaN") {
  Tensor x = vec({1, NaN, 3, 4, 5, NaN}, {2, 3}).set_requires_grad(true);
  const Tensor m = max(x, 1);
  CHECK(std::isnan(m.to_vector()[0]));
  CHECK(std::isnan(m.to_vector()[1]));
  const Tensor n = min(x, 0);
  CHECK(n.to_vector()[0] == 1);
  CHECK(std::isnan(n.to_vector()[1]));
  CHECK(std::isnan(n.to_vector()[2]));  // min(3, NaN)
  CHECK(std::isnan(max(x).item()));
  CHECK(std::isnan(min(x).item()));
  Tensor y = vec({2, NaN, 7, NaN}, {4}).set_requires_grad(true);
  max(y, 0).backward();
  CHECK(y.grad().to_vector() == std::vector<double>{0, 1, 0, 0});  // the first NaN
  CHECK(max(vec({-1, 2, 2}, {3}), 0).item() == 2);                 // without NaN: as before
}
