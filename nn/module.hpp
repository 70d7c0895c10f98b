// rewind/nn/module.hpp — modules: named, nested parameters (PyTorch-style keys), train/eval mode,
// a one-line description per layer, and state_dict for saving and loading.
//
// Data layout (Flux's): a batch is a (features, batch) matrix, one column per example; a single
// example may also be a (features,) vector. Weights follow PyTorch's shapes ((out, in), bias (out,))
// so a PyTorch state_dict loads as it is.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace rwd {

/// Base of every layer and model.
class Module {
 public:
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;
  Module(Module&&) = default;  ///< a copy would alias the parameters; moving hands them over
  Module& operator=(Module&&) = default;  ///< moves the parameters and children over, like the constructor
  virtual ~Module() = default;

  /// Applies the module to one input. Layers of a Chain implement this.
  virtual Tensor forward(const Tensor& x);
  /// forward(x): `model(x)`, as in PyTorch.
  Tensor operator()(const Tensor& x) { return forward(x); }

  /// Whether forward_masked takes a (time, batch) mask of padded steps (sequence layers: Recurrent;
  /// Chain when a layer inside does). Chain(…)(x, mask) hands the mask to these layers.
  virtual bool takes_mask() const { return false; }
  /// forward on a (time, features, batch) sequence with its (time, batch) mask (1: a real step, 0:
  /// padding). The default refuses: a layer that takes no mask.
  virtual Tensor forward_masked(const Tensor& x, const Tensor& mask);

  /// One line, like Flux's `Dense(5 => 1, tanh)`.
  virtual std::string repr() const = 0;

  /// Every parameter of this module and its descendants, keyed like PyTorch ("0.weight", "encoder.bias").
  NamedTensors named_parameters() const;
  /// The same parameters as handles only, in the same order (what an optimizer takes) — except that a
  /// tensor met again (a module shared by two parents, tied weights) is given once, as by PyTorch's
  /// parameters(); named_parameters() and state_dict() list it under each name, as PyTorch's state_dict().
  std::vector<Tensor> parameters() const;
  /// Total number of scalar parameters (a shared tensor counted once).
  std::size_t num_parameters() const;
  /// Direct children, by name.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& named_children() const { return m_children; }

  /// Training mode (dropout active) for this module and its descendants.
  void train(bool on = true);
  /// Evaluation mode: train(false).
  void eval() { train(false); }
  /// True in training mode (the default, as in PyTorch), false after eval().
  bool training() const { return m_training; }

  /// Zeroes (or drops) every parameter's gradient.
  void zero_grad(bool set_to_none = false);
  /// Converts every parameter to `dtype` in place (handles stay valid; gradients are dropped).
  void to(Dtype dtype);
  /// Calls fn on this module and every descendant, parents first.
  void apply(const std::function<void(Module&)>& fn);

  /// The parameters as named tensors (the live handles; copy values with detach() to snapshot).
  NamedTensors state_dict() const { return named_parameters(); }
  /// Copies values into the parameters. Checks everything first — every key present, no unexpected
  /// key, equal dtypes (strict), equal shapes (always) — and changes nothing if a check fails. With
  /// strict=false, missing and unexpected keys are skipped and values are converted to the model's dtype.
  void load_state_dict(const NamedTensors& state, bool strict = true);

  /// A table of every layer with its parameter count, and the total (like Keras' summary()).
  std::string summary() const;

  // Stateful layers (Recur, or a user's layer that carries something between calls) override these
  // five; every other module keeps the no-op. The free functions reset(model), detach_state(model)
  // and reset_rows(model, done) of nn/reset.hpp call them on the model and every descendant, so a
  // Chain or any other container reaches the stateful layers inside it without knowing their types.
  /// Brings recurrent state back to its initial value.
  virtual void reset_state() {}
  /// Keeps the carried state's value and drops its history, so the next backward stops here
  /// (truncated BPTT).
  virtual void detach_state() {}
  /// Resets only the batch columns whose flag in `done` is set (the sequences that ended).
  virtual void reset_rows(const std::vector<bool>& done) { (void)done; }
  /// The carried state's values, without history (empty when nothing is carried), to come back to
  /// later with restore_state — train_truncated rewinds to them for TBPTT(k1, k2) with k2 > k1.
  virtual std::vector<Tensor> save_state() const { return {}; }
  /// Puts back a carried state that save_state() returned.
  virtual void restore_state(const std::vector<Tensor>& saved) { (void)saved; }

  // The checks every layer makes on what it is given, worded once here so the messages cannot drift.
  /// The dtype of the first parameter, its own or else its children's (every parameter of a model has
  /// it: Module::to converts them all). Returns false, leaving `out` alone, for a module without any.
  bool parameter_dtype(Dtype& out) const;
  /// Throws DtypeError "Dense(3 => 2): input is float64 but the layer's parameters are float32 — .to(float64)
  /// the model, or .to(float32) the input"
  /// unless `x` (described as `what`: "input", "state 1") has the dtype of this layer's parameters.
  void check_dtype(const Tensor& x, const std::string& what = "input") const;
  /// Throws TapeError "LSTM(3 => 4): the input is an undefined tensor" when `x` (described as `what`)
  /// is undefined (default-constructed, or a gradient not computed yet): named by the layer, not by the
  /// accessor that would trip on it first.
  void refuse_undefined(const Tensor& x, const char* what = "the input") const;
  /// Throws ShapeError naming this layer when `x` (described as `what`) is (features, 0): batch 0 is
  /// refused by every layer, since a (hidden,)-vector input already uses "no batch axis" (see Cell).
  void refuse_batch_0(const Tensor& x, const std::string& what = "input") const;
  /// The same for any shape whose last axis is the batch (Embedding's (batch,) ids).
  void refuse_batch_0(const Shape& shape, const std::string& what) const;

 protected:
  /// Registers a parameter: marks it requires_grad, names it, and returns the handle.
  Tensor register_parameter(const std::string& name, Tensor t);
  /// Registers a child module under `name`; its parameters' display names become their keys here.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  /// Hook for layers whose behaviour depends on the mode.
  virtual void on_train(bool) {}

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, NamedTensors& out) const;
  void collect_tensors(std::vector<Tensor>& out) const;

  NamedTensors m_params;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> m_children;
  bool m_training = true;
};

namespace detail {
/// Copies each pair's source into its destination (converting the dtype) as if every source were read
/// before any destination is written: a source that is, or views, another pair's destination (the
/// model's own tensors under swapped keys) is copied first. Shapes must already have been checked.
/// The last step of load_state_dict and load_torch.
void assign_all(const std::vector<std::pair<Tensor, Tensor>>& destination_source);
}  // namespace detail

/// Throws ValueError "<layer>: <what> must be at least 1, got 0". Every size of every layer (features,
/// hidden units, vocabulary, layers) is at least 1 — PyTorch refuses hidden_size 0 the same way — so no
/// layer ever computes with an empty weight.
void check_size(const char* layer, const char* what, std::size_t n);

/// A value as the messages show it, printf's %g: "0.5", "-1", "1e+20", "inf", "nan".
std::string format_value(double v);

/// Wraps a module value or pointer as a shared_ptr<Module> (so Chain takes either).
template <class M>
std::shared_ptr<Module> as_module(M&& m) {
  using D = std::decay_t<M>;
  if constexpr (requires { typename D::element_type; })
    return std::shared_ptr<Module>(std::forward<M>(m));
  else
    return std::make_shared<D>(std::forward<M>(m));
}

/// Writes m.repr() — the layer and its children, as Flux and PyTorch print a model — so that
/// `std::cout << model` works; summary() is the table with parameter counts.
std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace rwd
