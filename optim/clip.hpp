// rewind/optim/clip.hpp — gradient clipping, between backward() and step().
//
//     loss.backward();
//     double norm = rwd::clip_grad_norm(params, 1.0);   // the norm before clipping, for the log
//     opt.step();
//
// Both change the gradients in place (every handle to a .grad() sees the clipped values) and skip
// parameters without a gradient, as torch.nn.utils.clip_grad_norm_ / clip_grad_value_ do.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// A gradient with a NaN or ±inf element, found before anything was changed. `param` is the
/// parameter's position in the list given, `index` the element's flat (row-major) index, `value` it.
class NonFiniteGradError : public ValueError {
 public:
  /// The error with its message and where the element is.
  NonFiniteGradError(const std::string& message, std::size_t param, std::size_t index, double value)
      : ValueError(message), param(param), index(index), value(value) {}
  std::size_t param;  ///< the parameter's position in the list (0 when the element is on another process)
  std::size_t index;  ///< the element's flat row-major index in that gradient (0 when on another process)
  double value;       ///< the element: NaN or ±inf (the non-finite total when on another process)
};

/// Throws NonFiniteGradError if any gradient holds a NaN or ±inf: "<who>: the gradient of parameter 2
/// '0.weight' (4, 3) is nan at [1, 2] …", the first such element in parameter order, then row-major.
/// Reads every gradient once and changes nothing; parameters without a gradient are skipped. fit() and
/// train_truncated() call it before each step (an optimizer's own step() does not: see optimizer.hpp).
void check_finite_grads(const std::vector<Tensor>& params, const std::string& who);

/// Scales all gradients together so that their total norm is at most `max_norm`.
///
/// total = ‖(‖g₁‖ₚ, ‖g₂‖ₚ, …)‖ₚ = (Σ |gᵢⱼ|ᵖ)^(1/p) over every element of every gradient (p = norm_type,
/// > 0, or INFINITY for the largest |gᵢⱼ|). If max_norm / (total + 1e-6) < 1, every gradient is
/// multiplied by that factor — PyTorch's rule: the gradients are left alone only when
/// max_norm ≥ total + 1e-6 (at total = max_norm they shrink by the factor max_norm/(max_norm + 1e-6)).
/// Returns `total` before clipping (0 if no parameter has a gradient). The norm is accumulated in
/// float64 and scaled by the largest |gᵢⱼ|, so it does not overflow for large finite gradients.
///
/// A NaN or infinite total: with `error_if_nonfinite` throws NonFiniteGradError naming the norm and the first
/// parameter and element at fault, gradients untouched (when every element is finite and the norm itself
/// overflows — |g| near the largest double, or a tiny p — it says so, with param 0, index 0 and value the
/// total); without, scales like PyTorch (by 0 for an infinite total, by NaN for a NaN one) and returns
/// the non-finite total.
/// Throws ValueError for a negative or NaN max_norm, or norm_type ≤ 0 or NaN, and for a parameter
/// listed twice (PyTorch would count its gradient twice in the norm and scale it twice).
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type = 2.0,
                      bool error_if_nonfinite = false);

/// How clip_grad_norm combines its partial results with other processes' when each holds only some of
/// the gradients (data-parallel training with sharded gradients): `max` returns the largest of every
/// process's value, `sum` their sum. Both are called the same number of times on every process.
/// (Gradients already averaged over the ranks, as DataParallel leaves them, are whole on every rank:
/// the plain clip_grad_norm then sees the global norm.)
struct NormReduction {
  std::function<double(double)> max;  ///< this process's value → the largest over every process (MPI_MAX)
  std::function<double(double)> sum;  ///< this process's value → the sum over every process (MPI_SUM)
};

/// clip_grad_norm over the gradients of every process together: the total norm is that of all their
/// gradients (the same on every process), and each scales its own by it. A non-finite element on
/// any process makes the total non-finite on all (with `error_if_nonfinite` the process that holds
/// it names it, the others name the norm). Throws ValueError if `reduce.max` or `reduce.sum` is empty.
double clip_grad_norm(const std::vector<Tensor>& params, double max_norm, double norm_type, bool error_if_nonfinite,
                      const NormReduction& reduce);

/// Clamps every gradient element to [−clip, clip] (NaN stays NaN). Throws ValueError if clip < 0 or NaN.
void clip_grad_value(const std::vector<Tensor>& params, double clip);

}  // namespace rwd
