// rewind/optim/clip.hpp — gradient clipping, between backward() and step().
//
//     loss.backward();
//     double norm = rwd::clip_grad_norm(params, 1.0);   // the norm before clipping, for the log
//     opt.step();
//
// Both change the gradients in place (every handle to a .grad() sees the clipped values) and skip
// parameters without a gradient, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ do.
#pragma once

#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// Scales all gradients together so that their total norm is at most `max_norm`.
///
/// total = ‖(‖g₁‖ₚ, ‖g₂‖ₚ, …)‖ₚ = (Σ |gᵢⱼ|ᵖ)^(1/p) over every element of every gradient (p = norm_type,
/// > 0, or INFINITY for the largest |gᵢⱼ|). If max_norm / (total + 1e-6) < 1, every gradient is
/// multiplied by that factor — PyTorch's rule: the gradients are left alone only when
/// max_norm ≥ total + 1e-6 (at total = max_norm they shrink by the factor max_norm/(max_norm + 1e-6)).
/// Returns `total` before clipping (0 if no parameter has a gradient). The norm is accumulated in
/// float64 and scaled by the largest |gᵢⱼ|, so it does not overflow for large finite gradients.
///
/// A NaN or infinite total: with `error_if_nonfinite` throws ValueError naming the norm and the first
/// parameter and element at fault, gradients untouched; without, scales like PyTorch (by 0 for an
/// infinite total, by NaN for a NaN one) and returns the non-finite total.
/// Throws ValueError for a negative or NaN max_norm, or norm_type ≤ 0 or NaN.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

/// Clamps every gradient element to [−clip, clip] (NaN stays NaN). Throws ValueError if clip < 0 or NaN.
void clip_grad_value(const std::vector<Tensor>& params, double clip);

}  // namespace rwd
