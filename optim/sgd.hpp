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
  double lr = 1e-3;            ///< initial learning rate (lr() holds the current one)
  double momentum = 0.0;       ///< μ; 0 is plain gradient descent (no state kept)
  double dampening = 0.0;      ///< τ: the momentum buffer adds (1 − τ)·g after the first step
  double weight_decay = 0.0;   ///< λ: L2, added to the gradient
  bool nesterov = false;       ///< Nesterov momentum, g ← g + μ·b (needs μ > 0 and τ = 0)
};

/// Stochastic gradient descent: `SGD opt(params, {.lr = 0.1, .momentum = 0.9, .nesterov = true});`
class SGD : public Optimizer {
 public:
  using Options = SGDOptions;  ///< the options type, for code generic over optimizers
  /// Throws ValueError for a negative lr, momentum or weight_decay, or Nesterov without momentum.
  explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
  /// The options as constructed (options().lr stays the initial rate when a schedule moves lr()).
  const SGDOptions& options() const { return m_options; }
  std::string str() const override;

 protected:
  void update(std::size_t i, Tensor& param, const Tensor& grad) override;

 private:
  SGDOptions m_options;
};

}  // namespace rwd
