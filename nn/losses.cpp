// Losses: compositions of primitive ops, no backward of their own. The conventions (layout,
// reductions, weights, errors) are explained once in losses.hpp.
#include "losses.hpp"

#include "module.hpp"  // format_value

#include <cmath>
#include <string>
#include <vector>

namespace rwd {

namespace {

void check_same_dtype(const char* loss, const char* what, const Tensor& x, const char* other, const Tensor& y) {
  if (x.dtype() != y.dtype())
    throw DtypeError(std::string(loss) + ": " + what + " is " + dtype_name(x.dtype()) + " but " + other + " is " +
                     dtype_name(y.dtype()) + "; convert one with Tensor::to");
}

// An undefined operand (a default-constructed Tensor, a gradient not computed yet) is named by the loss
// and the argument, rather than by the tensor accessor that first trips on it.
void require_defined(const char* loss, const char* name, const Tensor& x) {
  if (!x.defined())
    throw TapeError(std::string(loss) + ": " + name + " is an undefined tensor (default-constructed, or a gradient not "
                     "computed yet)");
}

// A loss of nothing is refused, whatever the reduction: the layers refuse batch 0 too (nn/module.hpp),
// and a mean over no examples would be 0/0.
void refuse_empty(const char* loss, const char* name, const Tensor& x) {
  if (x.numel() == 0)
    throw ShapeError(std::string(loss) + ": " + name + " " + x.shape().str() +
                     " has no elements: batch 0 (an empty batch) is refused");
}

// A weight scales each element's loss, so it must be finite and ≥ 0 (a 0/1 mask, or weights): a NaN
// would poison the sum and a negative one would reward the error it weighs.
void check_weight_values(const char* loss, const Tensor& weight, const char* name = "weight",
                         const char* hint = " (a 0/1 mask or weights ≥ 0)") {
  const std::vector<double> w = weight.to_vector();
  const Shape s = weight.shape();
  for (std::size_t k = 0; k < w.size(); ++k)
    if (!(w[k] >= 0 && std::isfinite(w[k]))) {
      std::string at = "(";
      for (std::size_t d = 0, rest = k; d < s.ndim(); ++d) {
        std::size_t stride = 1;
        for (std::size_t e = d + 1; e < s.ndim(); ++e) stride *= s[e];
        at += (d ? ", " : "") + std::to_string(rest / stride);
        rest %= stride;
      }
      at += s.ndim() == 1 ? ",)" : ")";
      throw ValueError(std::string(loss) + ": " + name + " " + format_value(w[k]) + " at " + at + " of the " + name + " " +
                       s.str() + " must be finite and non-negative" + hint);
    }
}

// The elementwise losses compare two tensors of one shape (no silent broadcasting: a (B,) target
// against a (1, B) prediction would otherwise make a (B, B) loss).
void check_pair(const char* loss, const char* pred_name, const Tensor& pred, const Tensor& target) {
  require_defined(loss, pred_name, pred);
  require_defined(loss, "target", target);
  if (pred.shape() != target.shape())
    throw_shape_error(loss, {{pred_name, pred.shape()}, {"target", target.shape()}},
                      std::string("the target must have the ") + pred_name + "'s shape");
  check_same_dtype(loss, pred_name, pred, "target", target);
  refuse_empty(loss, pred_name, pred);
}

// Probabilities, and the binary cross-entropies' targets, lie in [0, 1]. A target outside it has no
// minimum: −y·log p − (1 − y)·log(1 − p) with y = 2 (or −1, an SVM-style label) falls without bound as
// p → 1 (or 0), so training would run away instead of failing.
void check_unit_interval(const char* loss, const char* what, const Tensor& x, const char* hint = "") {
  const std::vector<double> v = x.to_vector();
  for (std::size_t i = 0; i < v.size(); ++i)
    if (!(v[i] >= 0 && v[i] <= 1))
      throw ValueError(std::string(loss) + ": " + what + " " + std::to_string(v[i]) + " at flat position " +
                       std::to_string(i) + " is outside [0, 1]" + hint);
}

// w must broadcast *to* ℓ's shape (never enlarge it): right-aligned, each dimension equal or 1.
void check_weight(const char* loss, const char* what, const Tensor& weight, const Tensor& per_element) {
  const Shape ws = weight.shape(), ls = per_element.shape();
  bool ok = ws.ndim() <= ls.ndim();
  for (std::size_t i = 0; ok && i < ws.ndim(); ++i) {
    const std::size_t d = ws[ws.ndim() - 1 - i];
    ok = d == 1 || d == ls[ls.ndim() - 1 - i];
  }
  if (!ok)
    throw_shape_error(loss, {{"weight", ws}, {what, ls}}, std::string("the weight must broadcast to the ") + what + "'s shape");
  check_same_dtype(loss, "the weight", weight, "the loss", per_element);
  check_weight_values(loss, weight);
}

// The reduction of losses.hpp; `weight` (if defined) has been checked against ℓ.
// Reduces the terms v (w ⊙ ℓ already, or ℓ when there is no weight w): the mean divides by Σ w.
Tensor reduce_terms(const Tensor& v, const Tensor& weight, Reduction reduction) {
  switch (reduction) {
    case Reduction::none: return v;
    case Reduction::sum: return sum(v);
    case Reduction::mean: {
      if (!weight.defined()) return mean(v);
      // Σ w ⊙ ℓ / Σ w, with w broadcast to ℓ's shape so a (1, B) mask counts once per element.
      const Tensor total = sum(broadcast_to(weight, v.shape()));
      if (total.item() == 0) return sum(v);  // all padding: 0, not 0/0
      return sum(v) / total;
    }
  }
  return v;  // unreachable
}

Tensor reduce(const Tensor& l, const Tensor& weight, Reduction reduction) {
  return reduce_terms(weight.defined() ? weight * l : l, weight, reduction);
}

Tensor reduce_elementwise(const char* loss, const Tensor& l, const LossOptions& o, bool takes_pos_weight = false) {
  // pos_weight weighs the positive term of a binary cross-entropy on logits; any other loss would
  // silently ignore it
  if (o.pos_weight.defined() && !takes_pos_weight)
    throw ValueError(std::string(loss) + ": pos_weight applies to binary_cross_entropy_with_logits only");
  if (o.weight.defined()) check_weight(loss, "per-element loss", o.weight, l);
  return reduce(l, o.weight, o.reduction);
}

// pos_weight as it multiplies the target. A 1-D (C,) one is a per-class weight: rewind's classes are the
// features axis (0 of (C,) and (C, B), 1 of (T, C, B)), where PyTorch's right-aligned rule would put a
// (C,) on the batch axis of (C, B) — so it is laid along that axis. Other ranks broadcast right-aligned.
Tensor pos_weight_for(const char* loss, const Tensor& pos_weight, const Tensor& target) {
  const Shape ts = target.shape(), ps = pos_weight.shape();
  check_same_dtype(loss, "pos_weight", pos_weight, "target", target);
  Shape placed = ps;
  if (ps.ndim() == 1 && ts.ndim() >= 2) {
    if (ts.ndim() > 3)
      throw_shape_error(loss, {{"pos_weight", ps}, {"target", ts}},
                        "a 1-D pos_weight lies along the features axis, which a target of more than 3 axes does not "
                        "have: give pos_weight a shape that broadcasts to the target");
    const std::size_t ax = ts.ndim() == 3 ? 1 : 0;
    placed = Shape{};
    for (std::size_t d = 0; d < ts.ndim(); ++d) placed.push_back(d == ax ? ps[0] : 1);
    if (ps[0] != 1 && ps[0] != ts[ax])
      throw_shape_error(loss, {{"pos_weight", ps}, {"target", ts}},
                        "a 1-D pos_weight is one weight per class: its size must be the target's features axis " +
                            std::to_string(ax) + " (" + std::to_string(ts[ax]) + ") or 1");
  }
  bool ok = placed.ndim() <= ts.ndim();
  for (std::size_t i = 0; ok && i < placed.ndim(); ++i) {
    const std::size_t d = placed[placed.ndim() - 1 - i];
    ok = d == 1 || d == ts[ts.ndim() - 1 - i];
  }
  if (!ok)
    throw_shape_error(loss, {{"pos_weight", ps}, {"target", ts}}, "pos_weight must broadcast to the target's shape");
  // a NaN would poison ℓ, ∞ makes ∞·0 = NaN where y = 0, and a negative one rewards missing a positive
  check_weight_values(loss, pos_weight, "pos_weight", " (a weight ≥ 0 for the positive term)");
  return placed == ps ? pos_weight : reshape(pos_weight, placed);
}

// max(log x, −100) for x ≥ 0, PyTorch's clamp. Where the clamp binds, log sees 1 instead of x (the
// "double where"), so neither the value nor the gradient passes through log 0 = −∞ or 0·∞ = NaN:
// the clamped elements get −100 and a zero gradient.
Tensor log_clamped(const Tensor& x) {
  static const double floor_arg = std::exp(-100.0);
  const std::vector<double> v = x.to_vector();
  std::vector<double> low(v.size(), 0.0);
  bool any = false;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (v[i] < floor_arg) low[i] = 1, any = true;
  if (!any) return log(x);
  const Tensor mask = Tensor::from_vector(low, x.shape(), x.dtype());
  return masked_fill(log(masked_fill(x, mask, 1.0)), mask, -100.0);
}

// The class axis: the one asked for, else the features axis of rewind's layouts — 0 of (classes,) and
// (classes, batch), 1 of a (time, classes, batch) sequence, as Activation("softmax") picks it. A 4-D or
// larger tensor has no such layout, and a guess would silently take the wrong axis for the classes.
std::size_t class_axis(const char* loss, const char* input_name, const Shape& s, const std::optional<int>& axis) {
  if (axis) return normalize_axis(loss, *axis, s);
  if (s.ndim() == 3) return 1;
  if (s.ndim() > 3)
    throw ShapeError(std::string(loss) + ": " + input_name + " " + s.str() + " has " + std::to_string(s.ndim()) +
                     " axes and no default class axis (the features axis is 0 of (classes, batch) and 1 of "
                     "(time, classes, batch)): set ClassLossOptions::axis");
  return normalize_axis(loss, 0, s);
}

Shape without_axis(const Shape& s, std::size_t axis) {
  Shape out;
  for (std::size_t d = 0; d < s.ndim(); ++d)
    if (d != axis) out.push_back(s[d]);
  return out;
}

void check_class_weight(const char* loss, const char* input_name, const Tensor& input, std::size_t axis,
                        const Tensor& class_weight) {
  const std::size_t classes = input.shape()[axis];
  if (class_weight.shape() != Shape{classes})
    throw_shape_error(loss, {{input_name, input.shape()}, {"class_weight", class_weight.shape()}},
                      "class_weight must be (classes,) = (" + std::to_string(classes) + ",), the size of axis " +
                          std::to_string(axis));
  check_same_dtype(loss, input_name, input, "class_weight", class_weight);
  // It folds into the weight w, so it obeys w's rule: a NaN would poison the sum, a negative one reward
  // the error it weighs (and could make the mean's Σ w zero or negative).
  check_weight_values(loss, class_weight, "class_weight");
}

// ε is a mixing weight: the smoothed target (1 − ε)·y + ε/C is a distribution only for ε ∈ [0, 1].
void check_label_smoothing(const char* loss, double eps) {
  if (!(eps >= 0 && eps <= 1))
    throw ValueError(std::string(loss) + ": label_smoothing " + format_value(eps) + " must be in [0, 1]");
}

// class_weight laid along the class axis: (1, …, classes, …, 1), to scale a tensor of the input's shape.
Tensor along_class_axis(const Tensor& class_weight, const Shape& s, std::size_t ax) {
  Shape along(s);
  for (std::size_t d = 0; d < s.ndim(); ++d) along[d] = d == ax ? s[d] : 1;
  return reshape(class_weight, along);
}

// ℓᵢ = −log_probs[yᵢ] along the class axis, with ignore_index and class_weight folded into the weight.
Tensor nll(const char* loss, const char* input_name, const Tensor& log_probs, const Indices& labels,
           const ClassLossOptions& o) {
  require_defined(loss, input_name, log_probs);
  check_label_smoothing(loss, o.label_smoothing);
  const Shape s = log_probs.shape();
  refuse_empty(loss, input_name, log_probs);
  const std::size_t ax = class_axis(loss, input_name, s, o.axis);
  const Shape per_example = without_axis(s, ax);
  const std::size_t classes = s[ax];
  if (labels.size() != per_example.numel())
    throw_shape_error(loss, {{input_name, s}, {"labels", Shape{labels.size()}}},
                      "expected one label per example: " + std::to_string(per_example.numel()) +
                          " labels for the examples " + per_example.str() + " (the shape without class axis " +
                          std::to_string(ax) + ")");

  // Ignored labels gather class 0 (any valid index); their ℓ is then set to 0 and their weight to 0.
  Indices safe = labels;
  std::vector<double> keep(labels.size(), 1.0), ignored(labels.size(), 0.0);
  bool any_ignored = false;
  for (std::size_t k = 0; k < labels.size(); ++k) {
    if (o.ignore_index && labels[k] == *o.ignore_index) {
      safe[k] = 0, keep[k] = 0, ignored[k] = 1, any_ignored = true;
    } else if (labels[k] < 0 || static_cast<std::size_t>(labels[k]) >= classes) {
      throw ValueError(std::string(loss) + ": label " + std::to_string(labels[k]) + " at position " +
                       std::to_string(k) + " is out of range [0, " + std::to_string(classes) + ") for the " +
                       std::to_string(classes) + " classes along axis " + std::to_string(ax) + " of " + input_name +
                       " " + s.str());
    }
  }
  if (o.class_weight.defined()) check_class_weight(loss, input_name, log_probs, ax, o.class_weight);

  Shape index_shape = s;
  index_shape[ax] = 1;
  Tensor l = -reshape(gather(log_probs, static_cast<int>(ax), safe, index_shape), per_example);
  // An ignored example adds exactly nothing, as PyTorch never reads it: the weight 0 alone would make
  // 0·∞ = NaN where the gathered class has log-probability −∞ (a masked-out class). masked_fill also
  // sends it no gradient.
  const Tensor ignored_mask = any_ignored ? Tensor::from_vector(ignored, per_example, l.dtype()) : Tensor();
  if (any_ignored) l = masked_fill(l, ignored_mask, 0.0);

  Tensor w;
  if (o.weight.defined()) {
    check_weight(loss, "per-example loss", o.weight, l);
    w = broadcast_to(o.weight, per_example);
  }
  if (any_ignored) {
    const Tensor m = Tensor::from_vector(keep, per_example, l.dtype());
    w = w.defined() ? w * m : m;
  }
  const Tensor a = w;  // the example's own weight (weight × not-ignored), before class_weight
  if (o.class_weight.defined() && !labels.empty()) {
    // w_i ·= class_weight[yᵢ] — index_select keeps it differentiable in class_weight.
    const Tensor cw = reshape(index_select(o.class_weight, 0, safe), per_example);
    w = w.defined() ? w * cw : cw;
  }
  if (o.label_smoothing == 0) return reduce(l, w, o.reduction);

  // Label smoothing (PyTorch's cross_entropy_loss_label_smoothing): with the smoothing term
  //   sᵢ = −Σ_c cw_c · log_probs[i, c]   (cw = class_weight, else 1; 0 for an ignored example)
  // the loss is (1 − ε)·Σ wᵢ ℓᵢ + (ε/C)·Σ aᵢ sᵢ, where w = a · cw[y] is the weight above: sᵢ is not
  // scaled by cw[yᵢ], yet the mean divides both terms by Σ wᵢ, as PyTorch does.
  const double eps = o.label_smoothing;
  Tensor terms = o.class_weight.defined() ? log_probs * along_class_axis(o.class_weight, s, ax) : log_probs;
  Tensor sm = -sum(terms, {static_cast<int>(ax)});
  if (any_ignored) sm = masked_fill(sm, ignored_mask, 0.0);
  const Tensor v = (1 - eps) * (w.defined() ? w * l : l) +
                   (eps / static_cast<double>(classes)) * (a.defined() ? a * sm : sm);
  return reduce_terms(v, w, o.reduction);
}

}  // namespace

Tensor reduce_loss(const Tensor& per_element, Reduction reduction, const Tensor& weight) {
  require_defined("reduce_loss", "per-element loss", per_element);
  refuse_empty("reduce_loss", "per-element loss", per_element);
  if (weight.defined()) check_weight("reduce_loss", "per-element loss", weight, per_element);
  return reduce(per_element, weight, reduction);
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target, const LossOptions& options) {
  check_pair("mse_loss", "prediction", prediction, target);
  return reduce_elementwise("mse_loss", square(prediction - target), options);
}

Tensor l1_loss(const Tensor& prediction, const Tensor& target, const LossOptions& options) {
  check_pair("l1_loss", "prediction", prediction, target);
  return reduce_elementwise("l1_loss", abs(prediction - target), options);
}

// With q = min(|r|, δ):  ℓ = ½q² + δ(|r| − q).
//   |r| ≤ δ: q = |r|, ℓ = ½r²;   |r| > δ: q = δ, ℓ = ½δ² + δ|r| − δ² = δ(|r| − ½δ).
// The clamp's gradient switches between the branches, so no comparison mask is needed:
// ∂ℓ/∂|r| = q·q' + δ(1 − q') = |r| inside, δ outside.
Tensor huber_loss(const Tensor& prediction, const Tensor& target, double delta, const LossOptions& options) {
  // δ = ∞ is refused: δ·(|r| − q) would be ∞·0 = NaN (use 0.5 * mse_loss for ½r² everywhere).
  if (!(delta > 0 && std::isfinite(delta)))
    throw ValueError("huber_loss: delta must be positive and finite, got " + format_value(delta));
  check_pair("huber_loss", "prediction", prediction, target);
  const Tensor a = abs(prediction - target);
  const Tensor q = clamp(a, 0.0, delta);
  return reduce_elementwise("huber_loss", 0.5 * square(q) + delta * (a - q), options);
}

Tensor binary_cross_entropy(const Tensor& probabilities, const Tensor& target, const LossOptions& options) {
  const char* loss = "binary_cross_entropy";
  check_pair(loss, "probabilities", probabilities, target);
  check_unit_interval(loss, "probability", probabilities, " (for logits use binary_cross_entropy_with_logits)");
  check_unit_interval(loss, "target", target);
  const Tensor& y = target;
  return reduce_elementwise(loss, -(y * log_clamped(probabilities) + (1.0 - y) * log_clamped(1.0 - probabilities)),
                            options);
}

// ℓ = −y log σ(x) − (1 − y) log(1 − σ(x)) = softplus(x) − x·y, and softplus(x) = max(x, 0) + log(1 + e^−|x|)
// never exponentiates a positive number: finite for logits ±100, ±1000 and beyond.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const LossOptions& options) {
  const char* loss = "binary_cross_entropy_with_logits";
  check_pair(loss, "logits", logits, target);
  check_unit_interval(loss, "target", target);
  if (!options.pos_weight.defined())
    return reduce_elementwise(loss, softplus(logits) - logits * target, options);
  // With p: ℓ = −p·y·log σ(x) − (1 − y)·log(1 − σ(x)) = (1 − y)·x + (1 + (p − 1)·y)·softplus(−x), since
  // −log σ(x) = softplus(−x) and −log(1 − σ(x)) = x + softplus(−x); p = 1 gives softplus(x) − x·y.
  const Tensor p = pos_weight_for(loss, options.pos_weight, target);
  return reduce_elementwise(loss, (1.0 - target) * logits + (1.0 + (p - 1.0) * target) * softplus(-logits), options,
                            true);
}

Tensor nll_loss(const Tensor& log_probs, const Indices& labels, const ClassLossOptions& options) {
  return nll("nll_loss", "log_probs", log_probs, labels, options);
}

Tensor cross_entropy(const Tensor& logits, const Indices& labels, const ClassLossOptions& options) {
  require_defined("cross_entropy", "logits", logits);
  const std::size_t ax = class_axis("cross_entropy", "logits", logits.shape(), options.axis);
  return nll("cross_entropy", "logits", log_softmax(logits, static_cast<int>(ax)), labels, options);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const ClassLossOptions& options) {
  const char* loss = "cross_entropy";
  check_pair(loss, "logits", logits, target);
  if (options.ignore_index)
    throw ValueError("cross_entropy: ignore_index applies to class-index labels, not to probability targets "
                     "(mask examples with `weight` instead)");
  check_label_smoothing(loss, options.label_smoothing);
  const Shape s = logits.shape();
  const std::size_t ax = class_axis(loss, "logits", s, options.axis);
  // label smoothing mixes the target with the uniform distribution: (1 − ε)·y + ε/C (PyTorch's)
  const double eps = options.label_smoothing;
  const Tensor y = eps == 0 ? target : (1 - eps) * target + eps / static_cast<double>(s[ax]);
  Tensor terms = y * log_softmax(logits, static_cast<int>(ax));
  if (options.class_weight.defined()) {
    check_class_weight(loss, "logits", logits, ax, options.class_weight);
    terms = terms * along_class_axis(options.class_weight, s, ax);
  }
  const Tensor l = -sum(terms, {static_cast<int>(ax)});
  if (options.weight.defined()) check_weight(loss, "per-example loss", options.weight, l);
  return reduce(l, options.weight, options.reduction);
}

Tensor one_hot(const Indices& labels, std::size_t classes, Dtype dtype) {
  const std::size_t n = labels.size();
  std::vector<double> v(classes * n, 0.0);
  for (std::size_t j = 0; j < n; ++j) {
    if (labels[j] < 0 || static_cast<std::size_t>(labels[j]) >= classes)
      throw ValueError("one_hot: label " + std::to_string(labels[j]) + " at position " + std::to_string(j) +
                       " is out of range [0, " + std::to_string(classes) + ")");
    v[static_cast<std::size_t>(labels[j]) * n + j] = 1;  // row labels[j], column j of (classes, n)
  }
  return Tensor::from_vector(v, {classes, n}, dtype);
}

}  // namespace rwd
