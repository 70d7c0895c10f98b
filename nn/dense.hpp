// rewind/nn/dense.hpp — the fully connected layer.
#pragma once

#include "../autograd/ops.hpp"  // affine(), the layer's map
#include "../core/random.hpp"
#include "activation.hpp"
#include "module.hpp"

namespace rwd {

/// y = act(W x + b), x of shape (in, batch) or (in,). W is (out, in) and b is (out,), as in PyTorch's
/// nn.Linear; initialized Glorot-uniform with zero bias (Flux's and Keras' default). Prints as
/// `Dense(5 => 1, tanh)`.
class Dense : public Module {
 public:
  /// `Dense(in, out, "tanh")`: weight (out, in) Glorot-uniform from `gen`, bias zeros (none when !bias).
  Dense(std::size_t in, std::size_t out, Activation activation = {}, bool bias = true, Dtype dtype = Dtype::f32,
        Generator& gen = default_generator());

  Tensor forward(const Tensor& x) override;
  /// The layer at every step of a (time, in, batch) sequence, the steps side by side: (out, time·batch),
  /// step t's columns t·batch … — forward(reshape(permute(x, {1, 0, 2}), …)) as one product that keeps
  /// no permuted copy for the backward (affine_seq). TimeDistributed(Dense) runs this.
  Tensor forward_sequence(const Tensor& x);
  std::string repr() const override;

  /// Size of x along axis 0 (PyTorch's in_features).
  std::size_t in_features() const { return m_in; }
  /// Size of y along axis 0 (PyTorch's out_features).
  std::size_t out_features() const { return m_out; }

  Tensor weight;  ///< (out, in)
  Tensor bias;    ///< (out,), undefined without bias

 private:
  std::size_t m_in, m_out;
  Activation m_activation;
};

}  // namespace rwd
