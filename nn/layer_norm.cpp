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
  const Shape s = x.shape();
  if ((s.ndim() != 1 && s.ndim() != 2) || s[0] != m_features)
    throw ShapeError(repr() + ": input " + s.str() + ": expected (" + std::to_string(m_features) + ", batch) or (" +
                     std::to_string(m_features) + ",)");
  refuse_batch_0(x);
  check_dtype(x);
  const Tensor centered = x - mean(x, {0}, true);
  const Tensor var = mean(centered * centered, {0}, true);
  Tensor y = centered / sqrt(var + m_eps);
  if (weight.defined()) {
    const Shape col = s.ndim() == 2 ? Shape{m_features, 1} : Shape{m_features};
    y = y * reshape(weight, col) + reshape(bias, col);
  }
  return y;
}

std::string LayerNorm::repr() const {
  return "LayerNorm(" + std::to_string(m_features) + (weight.defined() ? "" : ", affine=false") + ")";
}

}  // namespace rwd
