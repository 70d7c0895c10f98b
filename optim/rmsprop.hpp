// rewind/optim/rmsprop.hpp — RMSprop (Hinton, Coursera lecture 6e, 2012), in PyTorch's or Keras' form.
//
// PyTorch's torch.optim.RMSprop (the default flavour), for each parameter p with gradient g:
//     g ← g + λ·p                                 (weight_decay λ: L2, added to the gradient)
//     v ← α·v + (1 − α)·g²                        square_avg
//     centered:  ḡ ← α·ḡ + (1 − α)·g              grad_avg
//                d ← √(v − ḡ²) + ε
//     else       d ← √v + ε                       ε OUTSIDE the square root
//     momentum μ > 0:  b ← μ·b + g/d;  p ← p − lr·b     (momentum_buffer: lr applied outside b)
//     else             p ← p − lr·g/d
//   Defaults: lr = 1e-2, alpha = 0.99, eps = 1e-8, momentum = 0, centered = false, weight_decay = 0.
//
// Keras' keras.optimizers.RMSprop (Keras 3, keras/src/optimizers/rmsprop.py; RMSprop::keras_defaults()):
//     p ← p − lr·λ·p                              (weight_decay: decoupled, applied before the update,
//                                                  by the base optimizer's _apply_weight_decay)
//     v ← ρ·v + (1 − ρ)·g²                        velocity
//     centered:  ḡ ← ρ·ḡ + (1 − ρ)·g              average_gradient
//                δ ← lr·g / √(v − ḡ² + ε)
//     else       δ ← lr·g / √(v + ε)              ε INSIDE the square root
//     momentum μ > 0:  b ← μ·b + δ;  p ← p − b    (the buffer holds lr·…: a changed lr only affects
//                                                  new contributions, unlike PyTorch)
//     else             p ← p − δ
//   Defaults: learning_rate = 1e-3, rho = 0.9 (our alpha), epsilon = 1e-7, momentum = 0,
//   centered = false, weight_decay = None.
//   Keras' rho is PyTorch's alpha. With ε inside the root, √ε ≈ 3.2e-4 bounds the step when v is tiny
//   — ε = 1e-7 inside acts like ε ≈ 3e-4 outside, much larger than PyTorch's 1e-8 — so the two
//   flavours differ most on the first steps and for parameters with small gradients.
//   Older tf.keras (TF 2.x keras/optimizer_v2/rmsprop.py, now tf.keras.optimizers.legacy.RMSprop)
//   was inconsistent: without momentum it added ε outside the root (lr·g/(√v + ε)), with momentum it
//   called TF's ApplyRMSProp kernel, which adds it inside (mom ← μ·mom + lr·g/√(v + ε)).
//   The keras flavour here is Keras 3's.
//
// State slots: "step" (float64 0-d, kept like PyTorch's), "square_avg", then "momentum_buffer" if
// momentum > 0 ("momentum" in the Keras flavour, whose buffer holds a different quantity, so state
// cannot be loaded across flavours), then "grad_avg" if centered.
#pragma once

#include "optimizer.hpp"

namespace rwd {

/// Where ε and lr go: PyTorch's formula or Keras 3's (see above).
enum class RMSpropFlavor { pytorch, keras };

/// RMSprop's hyper-parameters (PyTorch's names and defaults; RMSprop::keras_defaults() for Keras').
struct RMSpropOptions {
  double lr = 1e-2;           ///< initial learning rate (lr() holds the current one)
  double alpha = 0.99;        ///< decay of the squared-gradient average (Keras: rho), in [0, 1)
  double eps = 1e-8;          ///< ε: outside the square root (pytorch flavour) or inside it (keras)
  double weight_decay = 0.0;  ///< λ: L2 added to the gradient (pytorch flavour), decoupled p ← p − lr·λ·p (keras)
  double momentum = 0.0;      ///< μ: with μ > 0 the steps accumulate in a momentum buffer
  bool centered = false;      ///< use v − ḡ² (ḡ: running mean of g, so a variance) in place of v under the root
  RMSpropFlavor flavor = RMSpropFlavor::pytorch;  ///< whose formula: PyTorch's or Keras 3's
};

/// RMSprop: `RMSprop opt(params, {.lr = 1e-2, .centered = true});` or, Keras' way,
/// `RMSprop opt(params, RMSprop::keras_defaults());`
class RMSprop : public Optimizer {
 public:
  using Options = RMSpropOptions;  ///< the options type, for code generic over optimizers
  /// Throws ValueError for lr, eps, momentum or weight_decay < 0, or alpha outside [0, 1) (PyTorch
  /// allows α ≥ 1, where v turns negative or stays 0).
  explicit RMSprop(std::vector<Tensor> params, RMSpropOptions options = {});
  /// Keras' RMSprop: lr = 1e-3, alpha (rho) = 0.9, eps = 1e-7, keras flavour.
  static RMSpropOptions keras_defaults();
  /// The options as constructed (options().lr stays the initial rate when a schedule moves lr()).
  const RMSpropOptions& options() const { return m_options; }
  std::string str() const override;

 protected:
  void update(std::size_t i, Tensor& param, const Tensor& grad) override;

 private:
  RMSpropOptions m_options;
};

}  // namespace rwd
