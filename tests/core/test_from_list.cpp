// Tensor::from_vector with the values written in place, as users of torch.tensor([...]) write them.
#include <doctest/doctest.h>
#include "core/error.hpp"
#include "core/tensor.hpp"

#include <vector>

using namespace rwd;

TEST_CASE("Tensor::from_vector takes a braced list of numbers (doubles, ints, a variable)") {
  const double v = -2.5;
  const Tensor a = Tensor::from_vector({0.5, -1.0, 0.25}, {3, 1}, Dtype::f64);
  CHECK(a.to_vector() == std::vector<double>{0.5, -1.0, 0.25});
  CHECK(a.shape() == Shape{3, 1});
  CHECK(Tensor::from_vector({1, 2}, {2}).dtype() == Dtype::f32);
  CHECK(Tensor::from_vector({v}, {1, 1}, Dtype::f64).item() == v);
  CHECK_THROWS_AS(Tensor::from_vector({1.0, 2.0, 3.0}, {2, 2}), ValueError);  // 3 values for 4 elements
}
