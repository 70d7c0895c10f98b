// rewind/optim/sgd.hpp — stochastic gradient descent with momentum, Nesterov and weight decay.
//
// PyTorch's torch.optim.SGD, step t = 1, 2, … for each parameter p with gradient g:
//     g ← g + λ·p                                   (weight_decay λ ≠ 0: L2, added to the gradient)
//     if μ ≠ 0:                                     (momentum μ)
//         b ← g                      at t = 1
//         b ← μ·b + (1 − τ)·g        after          (dampening τ)
//         g ← g + μ·b   if nesterov, else g ← b
//     p ← p − lr·g
// With μ = 0 this is plain gradient descent and keeps no state. Nesterov needs μ > 0 and τ = 0.
// State slot: "momentum_buffer" (only when μ ≠ 0).
#pragma once

#include "optimizer.hpp"

namespace rwd {

/// SGD's hyper-parameters (PyTorch's names and defaults).
struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

/// Stochastic gradient descent: `SGD opt(params, {.lr = 0.1, .momentum = 0.9, .nesterov = true});`
class SGD : public Optimizer {
 public:
  using Options = SGDOptions;
  /// Throws ValueError for a negative lr, momentum or weight_decay, or Nesterov without momentum.
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  const SGDOptions& options() const { return m_options; }
  std::string str() const override;

 protected:
  void update(std::size_t i, Tensor& param, const Tensor& grad) override;

 private:
  SGDOptions m_options;
};

}  // namespace rwd
