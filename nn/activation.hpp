// rewind/nn/activation.hpp — named activation functions, and a layer that applies one.
#pragma once

#include <functional>
#include <string>

#include "module.hpp"

namespace rwd {

/// A named function of one tensor. Built from a name — "identity", "tanh", "sigmoid", "relu",
/// "softplus", "softmax" and "log_softmax" (over the features: axis 0 of (features, batch), axis 1 of a
/// (time, features, batch) sequence, as Keras' softmax normalises each step) — or from a name and a function.
struct Activation {
  std::string name = "identity";           ///< shown in a layer's repr: `Dense(2 => 5, tanh)`
  std::function<Tensor(const Tensor&)> fn;  ///< the function; empty for the identity

  Activation();
  Activation(const char* name);         ///< NOLINT: implicit, so Dense(5, 1, "tanh") reads naturally
  Activation(const std::string& name);  ///< NOLINT
  /// A user's function under a name: `Activation("gelu", [](const Tensor& x) { … })`.
  Activation(std::string name, std::function<Tensor(const Tensor&)> fn);

  /// fn(x), or x itself (no tape entry) for the identity.
  Tensor operator()(const Tensor& x) const { return fn ? fn(x) : x; }
  /// True when there is no function to apply (the identity).
  bool is_identity() const { return !fn; }
};

/// A layer that applies an activation, for use inside a Chain: `Chain(Dense(2, 5), Act("relu"))`.
class Act : public Module {
 public:
  /// The layer applying `activation`; prints as its name.
  explicit Act(Activation activation) : m_activation(std::move(activation)) {}
  Tensor forward(const Tensor& x) override { return m_activation(x); }
  std::string repr() const override { return m_activation.name; }

 private:
  Activation m_activation;
};

}  // namespace rwd
