#include "layer_norm.hpp"

#include <cmath>

#include "../autograd/ops.hpp"

namespace rwd {

LayerNorm::LayerNorm(std::size_t features, double eps, bool affine, Dtype dtype) : m_features(features), m_eps(eps) {
  check_size("LayerNorm", "features", features);
  if (!(eps >= 0 && std::isfinite(eps)))
    throw ValueError("LayerNorm: eps must be finite and non-negative, got " + format_value(eps));
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({features}, dtype));
    bias = register_parameter("bias", Tensor::zeros({features}, dtype));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  // The features are axis 0 of a (features,) vector or (features, batch) step, and axis 1 of a
  // (time, features, batch) sequence, whose every step is normalised on its own (PyTorch's LayerNorm
  // over the last axes whatever leads them, Keras' over each step's features).
  const Shape s = x.shape();
  const std::size_t axis = s.ndim() == 3 ? 1 : 0;
  if (s.ndim() < 1 || s.ndim() > 3 || s[axis] != m_features) {
    const std::string f = std::to_string(m_features);
    throw ShapeError(repr() + ": input " + s.str() + ": expected (" + f + ", batch), (" + f + ",) or a (time, " + f +
                     ", batch) sequence");
  }
  if (s.ndim() == 3 && s[0] == 0) throw ShapeError(repr() + ": input " + s.str() + " has zero time steps");
  refuse_batch_0(x);
  check_dtype(x);
  const int a = static_cast<int>(axis);
  const Tensor centered = x - mean(x, {a}, true);
  const Tensor var = mean(centered * centered, {a}, true);
  Tensor y = centered / sqrt(var + m_eps);
  if (weight.defined()) {
    // weight and bias laid along the features axis, to broadcast over the others
    const Shape along = s.ndim() == 3 ? Shape{1, m_features, 1} : s.ndim() == 2 ? Shape{m_features, 1} : Shape{m_features};
    y = y * reshape(weight, along) + reshape(bias, along);
  }
  return y;
}

std::string LayerNorm::repr() const {
  return "LayerNorm(" + std::to_string(m_features) + (weight.defined() ? "" : ", affine=false") + ")";
}

}  // namespace rwd
