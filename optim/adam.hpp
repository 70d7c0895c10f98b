// rewind/optim/adam.hpp — Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019).
//
// PyTorch's torch.optim.Adam / AdamW, for each parameter p with gradient g; its own step count t
// (1, 2, … counting only the steps where p had a gradient):
//     p ← p·(1 − lr·λ)                      AdamW: decoupled weight decay (λ = weight_decay)
//     g ← g + λ·p                           Adam:  L2 weight decay, added to the gradient
//     m ← β₁·m + (1 − β₁)·g                 first moment  (exp_avg)
//     v ← β₂·v + (1 − β₂)·g²                second moment (exp_avg_sq)
//     v̂ ← max(v̂, v)                         amsgrad only  (max_exp_avg_sq); then v̂ replaces v below
//     p ← p − lr/(1 − β₁ᵗ) · m / (√v / √(1 − β₂ᵗ) + ε)
// The bias corrections 1 − βᵗ undo the zero start of m and v. ε is added after the square root,
// to the bias-corrected √v — exactly where PyTorch adds it.
// Defaults: lr = 1e-3, betas = (0.9, 0.999), eps = 1e-8; weight_decay 0 for Adam, 1e-2 for AdamW.
// State slots: "step" (float64 0-d), "exp_avg", "exp_avg_sq", and "max_exp_avg_sq" with amsgrad —
// PyTorch's names.
#pragma once

#include <utility>

#include "optimizer.hpp"

namespace rwd {

/// Adam's hyper-parameters (PyTorch's names and defaults).
struct AdamOptions {
  double lr = 1e-3;                             ///< initial learning rate (lr() holds the current one)
  std::pair<double, double> betas{0.9, 0.999};  ///< (β₁, β₂): decay rates of m and v, each in [0, 1)
  double eps = 1e-8;                            ///< ε, added to the bias-corrected √v
  double weight_decay = 0.0;                    ///< λ: L2 added to the gradient (see decoupled_weight_decay)
  bool amsgrad = false;                         ///< use max(v̂, v) for v (Reddi et al. 2018)
  /// AdamW's rule for weight_decay (p ← p·(1 − lr·λ) before the update) instead of L2.
  bool decoupled_weight_decay = false;
};

/// Adam: `Adam opt(params, {.lr = 1e-3, .amsgrad = true});`
class Adam : public Optimizer {
 public:
  using Options = AdamOptions;  ///< the options type, for code generic over optimizers
  /// Throws ValueError for lr, eps or weight_decay < 0, or a beta outside [0, 1).
  explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
  /// The options as constructed (options().lr stays the initial rate when a schedule moves lr()).
  const AdamOptions& options() const { return m_options; }
  std::string str() const override;

 protected:
  /// For AdamW: the same optimizer under another `name` (a string literal) for str() and messages.
  Adam(const char* name, std::vector<Tensor> params, AdamOptions options);
  void update(std::size_t i, Tensor& param, const Tensor& grad) override;

 private:
  AdamOptions m_options;
  // β₁ᵗ and √(1 − β₂ᵗ) for the step count t they were last computed for: every parameter of a step
  // shares its t, so std::pow runs twice a step rather than twice a parameter (tiny: 5% of a step).
  double m_bias_t = -1, m_bias1 = 0, m_bias2_sqrt = 0;
};

/// AdamW's hyper-parameters: Adam's, with weight_decay 1e-2 applied decoupled.
struct AdamWOptions {
  double lr = 1e-3;                             ///< initial learning rate (lr() holds the current one)
  std::pair<double, double> betas{0.9, 0.999};  ///< (β₁, β₂): decay rates of m and v, each in [0, 1)
  double eps = 1e-8;                            ///< ε, added to the bias-corrected √v
  double weight_decay = 1e-2;                   ///< λ, decoupled: p ← p·(1 − lr·λ) before each update
  bool amsgrad = false;                         ///< use max(v̂, v) for v (Reddi et al. 2018)
};

/// AdamW: Adam with decoupled weight decay. `AdamW opt(params, {.lr = 1e-3, .weight_decay = 0.1});`
class AdamW : public Adam {
 public:
  using Options = AdamWOptions;  ///< the options type, for code generic over optimizers
  /// Throws ValueError as Adam's; options() gives them back as AdamOptions with decoupled_weight_decay.
  explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

}  // namespace rwd
