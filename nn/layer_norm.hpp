// rewind/nn/layer_norm.hpp — layer normalization over the features.
#pragma once

#include "module.hpp"

namespace rwd {

/// y = (x − mean) / √(var + eps) ⊙ weight + bias, with mean and (biased) variance taken over the
/// features — axis 0 of a (features, batch) input, the whole (features,) vector, or axis 1 of a (time,
/// features, batch) sequence (each step normalised on its own). weight starts at 1,
/// bias at 0, both (features,) as in PyTorch's nn.LayerNorm (Ba et al. 2016).
class LayerNorm : public Module {
 public:
  /// PyTorch's nn.LayerNorm(features, eps, elementwise_affine): eps finite and ≥ 0 (else ValueError).
  explicit LayerNorm(std::size_t features, double eps = 1e-5, bool affine = true, Dtype dtype = Dtype::f32);

  Tensor forward(const Tensor& x) override;
  std::string repr() const override;

  Tensor weight;  ///< (features,), undefined without affine
  Tensor bias;    ///< (features,)

 private:
  std::size_t m_features;
  double m_eps;
};

}  // namespace rwd
