#include "init.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../core/error.hpp"

namespace rwd::init {

std::size_t fan_in(const Shape& s) {
  if (s.ndim() == 0) return 1;
  if (s.ndim() == 1) return s[0];
  std::size_t receptive = 1;
  for (std::size_t i = 2; i < s.ndim(); ++i) receptive *= s[i];
  return s[1] * receptive;
}

std::size_t fan_out(const Shape& s) {
  if (s.ndim() == 0) return 1;
  if (s.ndim() == 1) return s[0];
  std::size_t receptive = 1;
  for (std::size_t i = 2; i < s.ndim(); ++i) receptive *= s[i];
  return s[0] * receptive;
}

Tensor glorot_uniform(const Shape& shape, Generator& gen, Dtype dtype, double gain) {
  const double a = gain * std::sqrt(6.0 / static_cast<double>(fan_in(shape) + fan_out(shape)));
  return Tensor::uniform(shape, -a, a, gen, dtype);
}

Tensor glorot_normal(const Shape& shape, Generator& gen, Dtype dtype, double gain) {
  const double sigma = gain * std::sqrt(2.0 / static_cast<double>(fan_in(shape) + fan_out(shape)));
  std::vector<double> v(shape.numel());
  for (double& x : v) x = sigma * gen.normal();
  return Tensor::from_vector(v, shape, dtype);
}

// Gram–Schmidt (twice, for stability) on the rows of a Gaussian matrix with rows ≤ cols, then
// transposed back if the shape was tall. Random signs come with the Gaussian draw. The rows are made
// unit-length while later rows are projected off them (qi −= (qi·qj) qj holds for a unit qj only), and
// scaled by gain at the end.
Tensor orthogonal(const Shape& shape, Generator& gen, Dtype dtype, double gain) {
  if (shape.ndim() < 2) throw ShapeError("orthogonal: shape " + shape.str() + ": needs at least 2 dimensions");
  const std::size_t rows = shape[0], cols = shape.numel() / std::max<std::size_t>(rows, 1);
  const bool tall = rows > cols;
  const std::size_t r = tall ? cols : rows, c = tall ? rows : cols;
  std::vector<double> q(r * c);
  for (double& x : q) x = gen.normal();
  for (std::size_t i = 0; i < r; ++i) {
    double* qi = q.data() + i * c;
    for (int pass = 0; pass < 2; ++pass)
      for (std::size_t j = 0; j < i; ++j) {
        const double* qj = q.data() + j * c;
        double dot = 0;
        for (std::size_t k = 0; k < c; ++k) dot += qi[k] * qj[k];
        for (std::size_t k = 0; k < c; ++k) qi[k] -= dot * qj[k];
      }
    double norm = 0;
    for (std::size_t k = 0; k < c; ++k) norm += qi[k] * qi[k];
    norm = std::sqrt(norm);
    for (std::size_t k = 0; k < c; ++k) qi[k] *= 1.0 / norm;
  }
  std::vector<double> out(rows * cols);
  for (std::size_t i = 0; i < r; ++i)
    for (std::size_t k = 0; k < c; ++k) (tall ? out[k * cols + i] : out[i * cols + k]) = gain * q[i * c + k];
  return Tensor::from_vector(out, shape, dtype);
}

Tensor uniform_fan_in(const Shape& shape, std::size_t fan_in, Generator& gen, Dtype dtype) {
  const double a = 1.0 / std::sqrt(static_cast<double>(std::max<std::size_t>(fan_in, 1)));
  return Tensor::uniform(shape, -a, a, gen, dtype);
}

Tensor lstm_gate_bias(std::size_t hidden, double forget_bias, Generator& gen, Dtype dtype) {
  Tensor b = uniform_fan_in({4 * hidden}, hidden, gen, dtype);
  if (forget_bias == 0.0) return b;
  std::vector<double> v = b.to_vector();
  for (std::size_t k = hidden; k < 2 * hidden; ++k) v[k] += forget_bias;
  return Tensor::from_vector(v, {4 * hidden}, dtype);
}

Tensor zeros(const Shape& shape, Dtype dtype) { return Tensor::zeros(shape, dtype); }
Tensor ones(const Shape& shape, Dtype dtype) { return Tensor::ones(shape, dtype); }
Tensor constant(const Shape& shape, double value, Dtype dtype) { return Tensor::full(shape, value, dtype); }

}  // namespace rwd::init
