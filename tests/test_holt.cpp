// Double exponential smoothing is an RNN (the seeds' RNN(1, 2, 1)): with weights built from α and β it
// reproduces Holt's method, and gradient descent through the unrolled recurrence recovers α and β.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <rewind.hpp>

using namespace rwd;

namespace {

// Holt's linear method computed directly: one-step forecasts ŷ_t = s_{t−1} + b_{t−1}, then
// s_t = α y_t + (1 − α)(s_{t−1} + b_{t−1}),  b_t = β (s_t − s_{t−1}) + (1 − β) b_{t−1}.
std::vector<double> holt(const std::vector<double>& y, double alpha, double beta, double s, double b) {
  std::vector<double> forecasts;
  for (double yt : y) {
    forecasts.push_back(s + b);
    const double s_next = alpha * yt + (1 - alpha) * (s + b);
    b = beta * (s_next - s) + (1 - beta) * b;
    s = s_next;
  }
  return forecasts;
}

// The same as an RNN(1, 2, 1) with identity activations, h = (level, slope):
//   h_t = [α; αβ] y_t + [[1−α, 1−α], [−αβ, 1−αβ]] h_{t−1},   ŷ_{t+1} = [1 1] h_t
// Y is (time, 1, batch): one series per column. Returns the forecasts (time, 1, batch).
Tensor des_rnn(const Tensor& alpha, const Tensor& beta, const Tensor& Y, const Tensor& h0) {
  const Tensor ab = alpha * beta;
  const Tensor W_hx = reshape(stack({alpha, ab}), {2, 1});
  const Tensor W_hh = reshape(stack({1.0 - alpha, 1.0 - alpha, -ab, 1.0 - ab}), {2, 2});
  const Tensor W_yh = Tensor::ones({1, 2}, alpha.dtype());
  Tensor h = h0;
  std::vector<Tensor> forecasts;
  for (std::size_t t = 0; t < Y.dim(0); ++t) {
    const Tensor y = squeeze(slice(Y, 0, t, t + 1), 0);  // (1, batch)
    forecasts.push_back(matmul(W_yh, h));
    h = matmul(W_hx, y) + matmul(W_hh, h);
  }
  return stack(forecasts, 0);
}

// Series from the model for which DES is optimal (ETS(A,A,N)): y_t = s + b + ε_t, s ← s + b + α ε_t,
// b ← b + αβ ε_t, so DES with the true α, β leaves exactly the noise as its forecast errors.
std::vector<double> ets_series(std::size_t n, double alpha, double beta, double s, double b, Generator& gen) {
  std::vector<double> y;
  for (std::size_t t = 0; t < n; ++t) {
    const double e = 0.5 * gen.normal();
    y.push_back(s + b + e);
    s = s + b + alpha * e;
    b = b + alpha * beta * e;
  }
  return y;
}

}  // namespace

TEST_CASE("holt: the fixed-weight RNN(1, 2, 1) reproduces Holt's method") {
  Generator gen(3);
  std::vector<double> ys;  // the seeds' noisy line: 0.8·N(0, 1) + 2t + 1
  for (int t = 0; t < 10; ++t) ys.push_back(0.8 * gen.normal() + 2 * t + 1);
  const double alpha = 0.7, beta = 0.8;
  // Holt's start: s₁ = y₁, b₁ = y₂ − y₁; then forecasts for y₂, y₃, …
  const std::vector<double> rest(ys.begin() + 1, ys.end());
  const std::vector<double> expected = holt(rest, alpha, beta, ys[0], ys[1] - ys[0]);
  Tensor Y = Tensor::from_vector(rest, {rest.size(), 1, 1}, float64);
  Tensor h0 = Tensor::from_vector(std::vector<double>{ys[0], ys[1] - ys[0]}, {2, 1}, float64);
  Tensor got = des_rnn(Tensor::scalar(alpha, float64), Tensor::scalar(beta, float64), Y, h0);
  const std::vector<double> g = got.to_vector();
  REQUIRE(g.size() == expected.size());
  for (std::size_t t = 0; t < g.size(); ++t) CHECK(g[t] == doctest::Approx(expected[t]).epsilon(1e-12));
}

TEST_CASE("holt: gradient descent through the recurrence recovers alpha and beta") {
  const double true_alpha = 0.6, true_beta = 0.3;
  const std::size_t T = 150, B = 8;
  Generator gen(11);
  std::vector<std::vector<double>> series;
  std::vector<double> flat(T * B), h0v(2 * B);
  for (std::size_t j = 0; j < B; ++j) {
    const double s0 = 10 * gen.uniform(), b0 = gen.uniform(-1, 1);
    series.push_back(ets_series(T, true_alpha, true_beta, s0, b0, gen));
    h0v[j] = s0;
    h0v[B + j] = b0;
    for (std::size_t t = 0; t < T; ++t) flat[t * B + j] = series[j][t];
  }
  Tensor Y = Tensor::from_vector(flat, {T, 1, B}, float64);
  Tensor h0 = Tensor::from_vector(h0v, {2, B}, float64);

  // The same loss computed directly, for a brute-force minimum that does not use any gradient.
  auto direct_loss = [&](double a, double b) {
    double total = 0;
    for (std::size_t j = 0; j < B; ++j) {
      const std::vector<double> f = holt(series[j], a, b, h0v[j], h0v[B + j]);
      for (std::size_t t = 0; t < T; ++t) total += (series[j][t] - f[t]) * (series[j][t] - f[t]);
    }
    return total / static_cast<double>(T * B);
  };
  double best_a = 0, best_b = 0, best = 1e300;
  for (double a = 0.30; a <= 0.90001; a += 0.005)
    for (double b = 0.05; b <= 0.60001; b += 0.005)
      if (const double l = direct_loss(a, b); l < best) best = l, best_a = a, best_b = b;

  Tensor alpha = Tensor::scalar(0.3, float64).set_requires_grad().set_name("alpha");
  Tensor beta = Tensor::scalar(0.1, float64).set_requires_grad().set_name("beta");
  double loss = 0;
  for (int it = 0; it < 400; ++it) {
    Tensor L = mean(square(Y - des_rnn(alpha, beta, Y, h0)));
    loss = L.item();
    L.backward();
    NoGradGuard no_grad;
    alpha.assign(alpha - 0.05 * alpha.grad());
    beta.assign(beta - 0.2 * beta.grad());
    alpha.zero_grad();
    beta.zero_grad();
  }
  MESSAGE("recovered alpha " << alpha.item() << ", beta " << beta.item() << " (true 0.6, 0.3; grid minimum " << best_a
                             << ", " << best_b << "); loss " << loss << " vs grid " << best);
  CHECK(std::abs(alpha.item() - best_a) < 0.01);  // GD lands on the brute-force minimum…
  CHECK(std::abs(beta.item() - best_b) < 0.01);
  CHECK(loss <= best + 1e-6);
  CHECK(std::abs(alpha.item() - true_alpha) < 0.1);  // …which is near the generating values
  CHECK(std::abs(beta.item() - true_beta) < 0.1);
}
