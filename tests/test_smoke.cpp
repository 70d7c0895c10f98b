#include <doctest/doctest.h>

#include <cmath>

#include <rewind.hpp>

using namespace rwd;

TEST_CASE("smoke: y = tanh(W x + b) backward") {
  // The loss weights each output differently (STYLE rule 12: a plain sum's symmetric gradient would
  // hide a swapped or transposed partial), and the gradients are checked against the chain rule
  // written out by hand: with z = W x + b and g = w ⊙ (1 − tanh²(z)), dL/db = g and dL/dW = g xᵀ.
  const std::vector<double> Wv{1, 2, 3, 4}, xv{0.1, -0.2}, bv{0.5, -0.5}, wv{0.7, -1.3};
  Tensor W = Tensor::from_vector(Wv, {2, 2}, float64).set_requires_grad();
  Tensor x = Tensor::from_vector(xv, {2, 1}, float64);
  Tensor b = Tensor::from_vector(bv, {2, 1}, float64).set_requires_grad();
  Tensor w = Tensor::from_vector(wv, {2, 1}, float64);
  Tensor y = sum(w * tanh(matmul(W, x) + b));
  y.backward();
  REQUIRE(W.grad().shape() == Shape{2, 2});
  REQUIRE(b.grad().shape() == Shape{2, 1});
  double loss = 0;
  for (std::size_t i = 0; i < 2; ++i) {
    const double z = Wv[2 * i] * xv[0] + Wv[2 * i + 1] * xv[1] + bv[i];
    loss += wv[i] * std::tanh(z);
    const double g = wv[i] * (1 - std::tanh(z) * std::tanh(z));
    CHECK(b.grad().at({i, 0}) == doctest::Approx(g).epsilon(1e-14));
    for (std::size_t j = 0; j < 2; ++j) CHECK(W.grad().at({i, j}) == doctest::Approx(g * xv[j]).epsilon(1e-14));
  }
  CHECK(y.item() == doctest::Approx(loss).epsilon(1e-14));
}
