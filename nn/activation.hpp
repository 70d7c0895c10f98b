// rewind/nn/activation.hpp — named activation functions, and a layer that applies one.
#pragma once

#include <functional>
#include <string>

#include "module.hpp"

namespace rwd {

/// A named function of one tensor. Built from a name — "identity", "tanh", "sigmoid", "relu",
/// "softplus", "softmax" and "log_softmax" (over axis 0, the features) — or from a name and a function.
struct Activation {
  std::string name = "identity";
  std::function<Tensor(const Tensor&)> fn;

  Activation();
  Activation(const char* name);         ///< NOLINT: implicit, so Dense(5, 1, "tanh") reads naturally
  Activation(const std::string& name);  ///< NOLINT
  Activation(std::string name, std::function<Tensor(const Tensor&)> fn);

  Tensor operator()(const Tensor& x) const { return fn ? fn(x) : x; }
  bool is_identity() const { return !fn; }
};

/// A layer that applies an activation, for use inside a Chain: `Chain(Dense(2, 5), Act("relu"))`.
class Act : public Module {
 public:
  explicit Act(Activation activation) : m_activation(std::move(activation)) {}
  Tensor forward(const Tensor& x) override { return m_activation(x); }
  std::string repr() const override { return m_activation.name; }

 private:
  Activation m_activation;
};

}  // namespace rwd
