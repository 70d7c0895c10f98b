#include <doctest/doctest.h>

#include <rewind.hpp>

using namespace rwd;

TEST_CASE("smoke: y = tanh(W x + b) backward") {
  Tensor W = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}, float64).set_requires_grad();
  Tensor x = Tensor::from_vector(std::vector<double>{0.1, -0.2}, {2, 1}, float64);
  Tensor b = Tensor::from_vector(std::vector<double>{0.5, -0.5}, {2, 1}, float64).set_requires_grad();
  Tensor y = sum(tanh(matmul(W, x) + b));
  y.backward();
  CHECK(W.grad().defined());
  CHECK(b.grad().shape() == Shape{2, 1});
}
