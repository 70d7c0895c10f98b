// Modules and layers: names, counts, printing, modes, state_dict, and gradients checked in float64.
#include <doctest/doctest.h>

#include <cmath>

#include <rewind.hpp>
#include "nn/nn.hpp"

using namespace rwd;

namespace {

std::vector<std::string> keys(const NamedTensors& nt) {
  std::vector<std::string> k;
  for (const auto& [name, t] : nt) k.push_back(name);
  return k;
}

}  // namespace

TEST_CASE("nn: nested parameter names, counts and one-line descriptions") {
  Generator gen(0);
  Chain inner(Dense(3, 4, "tanh", true, float32, gen), Dense(4, 2, {}, false, float32, gen));
  Chain model(Dense(2, 3, "relu", true, float32, gen), std::move(inner), Act("sigmoid"));
  CHECK(keys(model.named_parameters()) == std::vector<std::string>{"0.weight", "0.bias", "1.0.weight", "1.0.bias", "1.1.weight"});
  CHECK(model.num_parameters() == 2 * 3 + 3 + 3 * 4 + 4 + 4 * 2);
  CHECK(model.repr() == "Chain(Dense(2 => 3, relu), Chain(Dense(3 => 4, tanh), Dense(4 => 2, bias=false)), sigmoid)");
  CHECK(model.num_parameters() == 33);
  CHECK(model.summary() ==
        "name     layer                      params\n"
        "(model)  Chain                      0\n"
        "0        Dense(2 => 3, relu)        9\n"
        "1        Chain                      0\n"
        "1.0      Dense(3 => 4, tanh)        16\n"
        "1.1      Dense(4 => 2, bias=false)  8\n"
        "2        sigmoid                    0\n"
        "total: 33 parameters\n");
  for (const Tensor& p : model.parameters()) CHECK(p.requires_grad());
}

TEST_CASE("nn: Dense computes act(W x + b) on (features, batch) and on a vector") {
  Dense d(3, 2, "tanh", true, float64);
  d.weight.assign(Tensor::from_vector(std::vector<double>{0.1, -0.2, 0.3, 0.4, 0.5, -0.6}, {2, 3}, float64));
  d.bias.assign(Tensor::from_vector(std::vector<double>{0.05, -0.05}, {2}, float64));
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, -1, 0.5, 0, 3}, {3, 2}, float64);  // columns (1,-1,0) and (2,0.5,3)
  Tensor y = d(x);
  REQUIRE(y.shape() == Shape{2, 2});
  // Column 0: W·(1, −1, 0) + b = (0.1+0.2+0.05, 0.4−0.5−0.05)
  CHECK(y.at({0, 0}) == doctest::Approx(std::tanh(0.35)));
  CHECK(y.at({1, 0}) == doctest::Approx(std::tanh(-0.15)));
  // Column 1: W·(2, 0.5, 3) + b = (0.2−0.1+0.9+0.05, 0.8+0.25−1.8−0.05)
  CHECK(y.at({0, 1}) == doctest::Approx(std::tanh(1.05)));
  CHECK(y.at({1, 1}) == doctest::Approx(std::tanh(-0.8)));
  Tensor v = d(Tensor::from_vector(std::vector<double>{1, -1, 0}, {3}, float64));
  REQUIRE(v.shape() == Shape{2});
  CHECK(v.at({0}) == doctest::Approx(std::tanh(0.35)));
  CHECK_THROWS_WITH_AS(d(Tensor::zeros({4, 2}, float64)),
                       "Dense(3 => 2, tanh): input (4, 2): expected (3, batch) or (3,) — features along axis 0", ShapeError);
  // A sequence given to a Dense: the message points to TimeDistributed.
  CHECK_THROWS_WITH_AS(d(Tensor::zeros({5, 3, 2})),
                       "Dense(3 => 2, tanh): input (5, 3, 2): expected (3, batch) or (3,) — features along axis 0; for a "
                       "sequence (time, features, batch), apply it at every step with TimeDistributed(Dense(…))",
                       ShapeError);
}

TEST_CASE("nn: layer gradients match finite differences (float64)") {
  Generator gen(7);
  SUBCASE("Chain(Dense, Dense)") {
    Chain m(Dense(3, 4, "tanh", true, float64, gen), Dense(4, 2, "sigmoid", true, float64, gen));
    Tensor x = Tensor::uniform({3, 5}, -1, 1, gen, float64).set_requires_grad().set_name("x");
    std::vector<Tensor> in = m.parameters();
    in.push_back(x);
    auto r = gradcheck([&](const std::vector<Tensor>&) { return m(x); }, in);
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("LayerNorm") {
    LayerNorm ln(4, 1e-5, true, float64);
    ln.weight.assign(Tensor::uniform({4}, 0.5, 1.5, gen, float64));
    ln.bias.assign(Tensor::uniform({4}, -0.5, 0.5, gen, float64));
    Tensor x = Tensor::uniform({4, 3}, -2, 2, gen, float64).set_requires_grad().set_name("x");
    auto r = gradcheck([&](const std::vector<Tensor>&) { return ln(x); }, {ln.weight, ln.bias, x});
    CHECK_MESSAGE(r.ok(), r.str());
  }
  SUBCASE("Embedding, repeated ids") {
    Embedding e(5, 3, float64, gen);
    Tensor w = Tensor::uniform({3, 4}, -1, 1, gen, float64);
    auto r = gradcheck([&](const std::vector<Tensor>&) { return e(Indices{1, 4, 1, 0}) * w; }, {e.weight});
    CHECK_MESSAGE(r.ok(), r.str());
  }
}

TEST_CASE("nn: LayerNorm normalizes each column") {
  LayerNorm ln(5, 0.0, false, float64);
  Generator gen(3);
  Tensor y = ln(Tensor::uniform({5, 4}, -3, 7, gen, float64));
  for (std::size_t b = 0; b < 4; ++b) {
    double m = 0, v = 0;
    for (std::size_t f = 0; f < 5; ++f) m += y.at({f, b}) / 5;
    for (std::size_t f = 0; f < 5; ++f) v += (y.at({f, b}) - m) * (y.at({f, b}) - m) / 5;
    CHECK(m == doctest::Approx(0).epsilon(1e-12));
    CHECK(v == doctest::Approx(1));
  }
}

TEST_CASE("nn: Embedding looks up rows as (dim, batch) and (time, dim, batch)") {
  Embedding e(4, 2, float64);
  e.weight.assign(Tensor::from_vector(std::vector<double>{0, 1, 10, 11, 20, 21, 30, 31}, {4, 2}, float64));
  Tensor y = e(Indices{3, 0});
  REQUIRE(y.shape() == Shape{2, 2});
  CHECK(y.to_vector() == std::vector<double>{30, 0, 31, 1});
  Tensor ids = Tensor::from_vector(std::vector<double>{1, 2, 3, 0, 0, 1}, {3, 2}, float64);  // (time 3, batch 2)
  Tensor z = e(ids);
  REQUIRE(z.shape() == Shape{3, 2, 2});
  CHECK(z.at({0, 0, 1}) == 20);  // time 0, feature 0, batch 1 → id 2
  CHECK(z.at({2, 1, 1}) == 11);  // time 2, feature 1, batch 1 → id 1
  CHECK_THROWS_AS(e(Indices{4}), ValueError);
  // The same (time, batch) ids as integers: the same lookup, with no detour through doubles.
  const Tensor w = e.forward(Indices{1, 2, 3, 0, 0, 1}, Shape{3, 2});
  CHECK(w.shape() == z.shape());
  CHECK(w.to_vector() == z.to_vector());
  CHECK_THROWS_WITH_AS(e.forward(Indices{1, 2, 4, 0}, Shape{2, 2}),
                       "Embedding(4 => 2): id 4 at position (1, 0) is out of range [0, 4)", ValueError);
  CHECK_THROWS_WITH_AS(e.forward(Indices{1, 2, 3}, Shape{2, 2}),
                       "Embedding(4 => 2): 3 ids do not fill the shape (2, 2) (4)", ShapeError);
  CHECK_THROWS_AS(e.forward(Indices{1, 2}, Shape{1, 1, 2}), ShapeError);
  CHECK(e.forward(Indices{3, 0}, Shape{2}).to_vector() == y.to_vector());
}

TEST_CASE("nn: Dropout is active in training only, scaled, seeded, and its gradient is the mask") {
  Dropout drop(0.25, 42);
  Tensor x = Tensor::ones({200, 50}, float64).set_requires_grad();
  const Tensor out = drop(x);
  const Tensor y = out.detach();  // backward clears the tape, and `out` with it
  std::size_t zeros = 0;
  for (double v : y.to_vector()) {
    CHECK((v == 0.0 || v == doctest::Approx(1 / 0.75)));
    zeros += v == 0.0;
  }
  CHECK(zeros == doctest::Approx(0.25 * 10000).epsilon(0.08));
  sum(out).backward();
  CHECK(x.grad().to_vector() == y.to_vector());  // dy/dx = mask, and x = 1
  Dropout same(0.25, 42);
  CHECK(same(Tensor::ones({200, 50}, float64)).to_vector() == y.to_vector());
  Chain m(Dense(3, 3), Dropout(0.5, 1));
  m.eval();
  CHECK_FALSE(m[1].training());
  Tensor in = Tensor::ones({3, 2});
  CHECK(m(in).to_vector() == m(in).to_vector());
  m.train();
  CHECK(m[1].training());
  CHECK_THROWS_AS(Dropout(1.0), ValueError);
}

TEST_CASE("nn: load_state_dict checks everything and leaves the model unchanged on failure") {
  Chain m(Dense(2, 3), Dense(3, 1));
  const std::vector<double> before = m.parameters()[0].to_vector();
  NamedTensors good;
  for (const auto& [k, p] : m.named_parameters()) good.emplace_back(k, Tensor::full(p.shape(), 0.5));
  SUBCASE("a shape mismatch names the key and both shapes") {
    NamedTensors bad = good;
    bad[2].second = Tensor::zeros({1, 2});
    CHECK_THROWS_WITH_AS(m.load_state_dict(bad), "load_state_dict: key '1.weight': the model's parameter is (1, 3) but the state has (1, 2)", ShapeError);
  }
  SUBCASE("a missing key") {
    NamedTensors bad(good.begin(), good.end() - 1);
    CHECK_THROWS_WITH_AS(m.load_state_dict(bad), "load_state_dict: missing key '1.bias'", ValueError);
    m.load_state_dict(bad, /*strict=*/false);
    CHECK(m.parameters()[0].to_vector() == std::vector<double>(6, 0.5));
    return;
  }
  SUBCASE("an unexpected key") {
    NamedTensors bad = good;
    bad.emplace_back("2.weight", Tensor::zeros({1}));
    CHECK_THROWS_WITH_AS(m.load_state_dict(bad), "load_state_dict: unexpected key '2.weight' (the model has 4 parameters)", ValueError);
  }
  CHECK(m.parameters()[0].to_vector() == before);
  m.load_state_dict(good);
  CHECK(m.parameters()[3].to_vector() == std::vector<double>{0.5});
}

TEST_CASE("nn: to(float64) converts parameters in place") {
  Chain m(Dense(2, 2));
  Tensor w = m.parameters()[0];
  const std::vector<double> v32 = w.to_vector();
  m.to(float64);
  CHECK(w.dtype() == float64);  // the same handle sees the new dtype
  CHECK(w.to_vector() == v32);
  CHECK(m(Tensor::ones({2, 1}, float64)).dtype() == float64);
}

namespace {

// Sample mean and variance (about the mean) of a tensor's values.
std::pair<double, double> mean_var(const Tensor& t) {
  const std::vector<double> v = t.to_vector();
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return {m, s / static_cast<double>(v.size())};
}

// Checks n = numel draws against a zero-mean distribution of variance `var` and, for a uniform one,
// bound `a` (0: unbounded, normal). Tolerances are 5 standard errors of the statistic for n draws, so
// a correct initializer fails with probability under 1e-6 whatever the seed, while a wrong scale
// (a factor √2 moves the variance by 100%, far past the 2-3% tolerances at n = 60,000) or all zeros fails:
//  - the mean: its standard error is √(var / n);
//  - the variance: relative standard error √(Var(x²)) / var / √n, i.e. √(2/n) for a normal
//    (E x⁴ = 3σ⁴) and √(4/45)·3 / √n = 0.894 / √n for U(−a, a) (E x⁴ = a⁴/5, var = a²/3);
//  - the bound: every |x| ≤ a, and the largest within a·(1 − 1e-3) (P(all n below that) = 0.999ⁿ ≈ 0).
void check_draws(const Tensor& t, double var, double a, const std::string& what) {
  const double n = static_cast<double>(t.numel());
  const auto [m, v] = mean_var(t);
  CHECK_MESSAGE(std::abs(m) <= 5 * std::sqrt(var / n), what << ": mean " << m);
  const double rel = a > 0 ? 0.894 / std::sqrt(n) : std::sqrt(2 / n);
  CHECK_MESSAGE(std::abs(v / var - 1) <= 5 * rel, what << ": variance " << v << ", expected " << var);
  if (a > 0) {
    double mx = 0;
    for (double x : t.to_vector()) mx = std::max(mx, std::abs(x));
    CHECK_MESSAGE(mx <= a, what << ": |x| up to " << mx << " past the bound " << a);
    CHECK_MESSAGE(mx >= a * (1 - 1e-3), what << ": |x| only up to " << mx << " of the bound " << a);
  }
}

}  // namespace

TEST_CASE("nn: initializers draw from the published distributions") {
  Generator gen(11);
  // A (200, 300) weight: fan_in 300, fan_out 200, n = 60,000 draws.
  const Shape s{200, 300};
  const double fans = 300 + 200;
  SUBCASE("glorot_uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out))") {
    for (double gain : {1.0, 2.0}) {
      const double a = gain * std::sqrt(6.0 / fans);
      check_draws(init::glorot_uniform(s, gen, float64, gain), a * a / 3, a, "glorot_uniform");
    }
  }
  SUBCASE("glorot_normal: N(0, sigma^2), sigma = gain * sqrt(2 / (fan_in + fan_out))") {
    for (double gain : {1.0, 2.0}) {
      const double sigma = gain * std::sqrt(2.0 / fans);
      check_draws(init::glorot_normal(s, gen, float64, gain), sigma * sigma, 0, "glorot_normal");
    }
  }
  SUBCASE("uniform_fan_in: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's nn.Linear)") {
    const double a = 1 / std::sqrt(25.0);
    check_draws(init::uniform_fan_in(s, 25, gen, float64), a * a / 3, a, "uniform_fan_in");
  }
  SUBCASE("orthogonal: Q^T Q = gain^2 I on the small side") {
    for (double gain : {1.0, 1.5})
      for (Shape q_shape : {Shape{6, 4}, Shape{4, 6}}) {
        Tensor q = init::orthogonal(q_shape, gen, float64, gain);
        const bool tall = q_shape[0] > q_shape[1];
        Tensor qtq = tall ? matmul(q, q, true, false) : matmul(q, q, false, true);  // the small Gram matrix
        const std::size_t n = std::min(q_shape[0], q_shape[1]);
        for (std::size_t i = 0; i < n; ++i)
          for (std::size_t j = 0; j < n; ++j)
            CHECK(qtq.at({i, j}) == doctest::Approx(i == j ? gain * gain : 0.0).epsilon(1e-12));
      }
  }
  SUBCASE("the same seed draws the same values, another seed others") {
    Generator a(5), b(5), c(6);
    const std::vector<double> va = init::glorot_normal({3, 3}, a).to_vector();
    CHECK(va == init::glorot_normal({3, 3}, b).to_vector());
    CHECK(va != init::glorot_normal({3, 3}, c).to_vector());
  }
}

TEST_CASE("nn: parameters are displayed by their full keys, so reports tell layers apart") {
  Chain inner(Dense(3, 4), Dense(4, 2));
  Chain model(Dense(2, 3), std::move(inner));
  for (const auto& [key, p] : model.named_parameters()) CHECK(p.name() == key);
  Tensor x = Tensor::ones({2, 1}, float64);
  model.to(float64);
  GradcheckReport r = gradcheck([&](const std::vector<Tensor>&) { return model(x); }, model.parameters());
  CHECK(r.inputs[2].name == "1.0.weight");
}
