// rewind/nn/losses.hpp — loss functions, each a composition of the tape's primitive ops (no backward
// of its own: the tape differentiates them, and double backward comes for free).
//
//  Layout (Flux's). A batch of vectors is a (features, batch) matrix, one column per example. For
//  classification the logits are (classes, batch), and a sequence's are (time, classes, batch), the
//  layout of every sequence layer: unless `axis` names another, the class axis is the features axis —
//  0 of (classes,) and (classes, batch), 1 of (time, classes, batch), as Activation("softmax") picks it
//  and as PyTorch's class dim 1 of (N, C, L). 4-D and larger logits have no default (ShapeError: set
//  `axis`). The other axes are more examples. Class labels are Indices, one per example, in row-major
//  order of the logits' shape with the class axis removed: for (T, C, B) logits, label k belongs to
//  (t, b) = (k / B, k % B).
//
//  Per-element loss. Every loss first computes a per-element loss ℓ: of the prediction's shape for
//  the elementwise losses (mse, l1, huber, both binary cross-entropies), of the logits' shape without
//  the class axis for the classification losses (one value per example).
//
//  Reductions and weights. An optional weight w (a Tensor of the loss's dtype, broadcastable to ℓ's
//  shape — a 0/1 mask for padded sequences, or any non-negative weights) multiplies ℓ elementwise.
//  With w broadcast to ℓ's shape first:
//      Reduction::none  →  w ⊙ ℓ                      (ℓ's shape)
//      Reduction::sum   →  Σ w ⊙ ℓ                    (a 0-d tensor)
//      Reduction::mean  →  Σ w ⊙ ℓ / Σ w              (a 0-d tensor; without w, the plain mean of ℓ)
//  so a masked mean is the mean over the unmasked elements: the denominator is the mask's total
//  weight after broadcasting (a (1, B) mask over a (F, B) loss counts F per unmasked column), never
//  the element count. When Σ w is exactly 0 (an all-padding batch) the mean is Σ w ⊙ ℓ — that is 0 —
//  instead of NaN (Keras' divide_no_nan; PyTorch returns NaN). Note that PyTorch's `weight` of
//  binary_cross_entropy divides by the element count instead: get that with Reduction::sum / n.
//  For the classification losses, ignore_index and class_weight fold into w (see ClassLossOptions),
//  which gives exactly PyTorch's weighted mean Σ w_{yᵢ} ℓᵢ / Σ w_{yᵢ}. The weight may require a
//  gradient; the reduction differentiates through it.
//
//  Errors. A prediction/target shape mismatch, a wrong number of labels, a weight that does not
//  broadcast to ℓ, or a class_weight that is not (classes,) throws ShapeError naming the loss and
//  both shapes. A label out of range and a probability or binary cross-entropy target outside
//  [0, 1] throw ValueError (the library's exception for an argument out of its domain) naming the
//  loss, the position and the value. So does a weight or class_weight that is negative, infinite
//  or NaN (naming its index and value). An undefined operand throws TapeError (as the tensor itself
//  would) naming the loss and the argument. Operands of different dtypes throw DtypeError. An empty prediction (batch 0) throws
//  ShapeError, whatever the reduction, as every layer refuses batch 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "../autograd/ops.hpp"
#include "../core/tensor.hpp"

namespace rwd {

/// How a loss reduces its per-element values: the (weighted) mean, the sum, or none.
enum class Reduction { mean, sum, none };

/// Options of the elementwise losses (mse_loss, l1_loss, huber_loss, the binary cross-entropies).
struct LossOptions {
  Reduction reduction = Reduction::mean;  ///< mean (Σ w ⊙ ℓ / Σ w), sum, or none (ℓ's shape): PyTorch's `reduction`
  Tensor weight = {};  ///< per-element weight or 0/1 mask, broadcastable to the per-element loss; undefined = 1
  /// binary_cross_entropy_with_logits only (the other losses refuse it, ValueError): PyTorch's
  /// `pos_weight` p, weighing the positive term, ℓ = −[p·y·log σ(x) + (1 − y)·log(1 − σ(x))]. A 1-D
  /// (C,) tensor lies along the features axis (0 of (C,) and (C, batch), 1 of (time, C, batch)): one
  /// weight per class, as PyTorch's (C,) is for its (N, C) layout; any other shape broadcasts to the
  /// target right-aligned ((C, 1) is the same per-class weight). Finite and ≥ 0, else ValueError;
  /// a shape that does not broadcast to the target (or 1-D against 4-D and more) is a ShapeError.
  Tensor pos_weight = {};
};

/// Options of the classification losses (cross_entropy, nll_loss).
struct ClassLossOptions {
  Reduction reduction = Reduction::mean;  ///< over the per-example losses, as in LossOptions
  Tensor weight = {};  ///< per-example weight or mask, broadcastable to the per-example loss; undefined = 1
  /// The class axis of the logits / log-probabilities (negative counts from the end). Unset: the
  /// features axis — 0 of 1-D and 2-D, 1 of 3-D (time, classes, batch); 4-D and more must set it.
  std::optional<int> axis = std::nullopt;
  /// Examples whose label equals this contribute nothing and are not counted by the mean (their weight
  /// is 0, and their ℓ exactly 0, even where the input they would gather is −∞, as PyTorch skips them);
  /// they are exempt from the range check (PyTorch uses -100). Index labels only. With every example
  /// ignored the mean is 0 with a zero gradient (Σ w = 0, see above), where PyTorch gives NaN (0/0).
  std::optional<std::int64_t> ignore_index = std::nullopt;
  /// A (classes,) rescaling of each class, like PyTorch's `weight`: with index labels example i gets
  /// weight class_weight[yᵢ] (and the mean divides by their sum); with probability targets the terms
  /// become −Σ_c class_weight[c]·y_c·log p_c (and the mean divides by the example count, as PyTorch).
  Tensor class_weight = {};
  /// ε ∈ [0, 1], PyTorch's `label_smoothing`: the target becomes (1 − ε)·onehot + ε/C, so with index
  /// labels ℓᵢ = (1 − ε)·cw[yᵢ]·(−log p_{yᵢ}) + (ε/C)·Σ_c cw[c]·(−log p_c) (cw = class_weight, else 1;
  /// the smoothing term is not scaled by cw[yᵢ], yet the mean still divides by Σ w·cw[yᵢ], exactly
  /// as torch.nn.functional.cross_entropy does); ignored examples add nothing. With probability targets
  /// y becomes (1 − ε)·y + ε/C. nll_loss applies the same to its log-probabilities, so
  /// cross_entropy(x, y) stays nll_loss(log_softmax(x), y). Outside [0, 1] or NaN: ValueError.
  double label_smoothing = 0.0;
};

/// Mean squared error: ℓ = (prediction − target)².
Tensor mse_loss(const Tensor& prediction, const Tensor& target, const LossOptions& options = {});

/// Mean absolute error (MAE, L1): ℓ = |prediction − target| (the gradient at a zero residual is 0).
Tensor l1_loss(const Tensor& prediction, const Tensor& target, const LossOptions& options = {});

/// Huber: ℓ = ½r² where |r| ≤ delta, else delta·(|r| − ½delta), r = prediction − target (PyTorch's);
/// delta must be positive and finite (else ValueError).
Tensor huber_loss(const Tensor& prediction, const Tensor& target, double delta = 1.0,
                  const LossOptions& options = {});

/// Binary cross-entropy on probabilities p ∈ [0, 1] with targets y ∈ [0, 1]:
/// ℓ = −(y·max(log p, −100) + (1 − y)·max(log(1 − p), −100)).
///
/// The logs are clamped at −100 as in PyTorch, so p = 0 or 1 gives a finite loss (at most 100). The
/// gradient is the exact derivative of that clamped expression: −y/p + (1 − y)/(1 − p) while the logs
/// are above −100, and 0 from a clamped term (PyTorch's fused backward instead returns
/// (p − y)/max(p(1 − p), 1e−12) there). Nothing is NaN or infinite for any p in [0, 1], but in float32
/// 1/p itself overflows for p below ~3e−39; prefer binary_cross_entropy_with_logits, which never
/// forms p. Throws ValueError if some p or some target y is outside [0, 1] (or NaN): with y outside,
/// the loss has no minimum (PyTorch computes it anyway).
Tensor binary_cross_entropy(const Tensor& probabilities, const Tensor& target, const LossOptions& options = {});

/// Binary cross-entropy on logits x (p = σ(x)), stable for any |x|:
/// ℓ = max(x, 0) − x·y + log(1 + e^−|x|) = softplus(x) − x·y, with ∂ℓ/∂x = σ(x) − y and ∂ℓ/∂y = −x.
/// Throws ValueError if some target y is outside [0, 1] (or NaN): ℓ would then fall without bound
/// as x → ±∞ (PyTorch computes it anyway). With options.pos_weight p (see LossOptions):
/// ℓ = (1 − y)·x + (1 + (p − 1)·y)·softplus(−x), PyTorch's form, differentiable in p too.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const LossOptions& options = {});

/// Cross-entropy of logits with class indices: ℓᵢ = −log_softmax(logits, axis)[yᵢ] (log_softmax, then
/// gather along the class axis); ∂ℓᵢ/∂logits = softmax − onehot(yᵢ). Stable for any |logits|.
Tensor cross_entropy(const Tensor& logits, const Indices& labels, const ClassLossOptions& options = {});

/// Cross-entropy of logits with one-hot or probability targets of the logits' shape:
/// ℓ = −Σ_c target_c · log_softmax(logits, axis)_c, summed over the class axis.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const ClassLossOptions& options = {});

/// Negative log-likelihood of log-probabilities with class indices: ℓᵢ = −log_probs[yᵢ] along the
/// class axis. cross_entropy(x, y) is nll_loss(log_softmax(x, axis), y).
Tensor nll_loss(const Tensor& log_probs, const Indices& labels, const ClassLossOptions& options = {});

/// Reduces a per-element loss as described above (for writing a loss of one's own).
Tensor reduce_loss(const Tensor& per_element, Reduction reduction = Reduction::mean, const Tensor& weight = Tensor());

/// One-hot targets in Flux's layout: a (classes, n) constant with a 1 at (labels[j], j).
Tensor one_hot(const Indices& labels, std::size_t classes, Dtype dtype = float32);

}  // namespace rwd
