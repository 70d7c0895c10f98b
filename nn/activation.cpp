#include "activation.hpp"

#include "../autograd/ops.hpp"

namespace rwd {

Activation::Activation() = default;

Activation::Activation(const char* name) : Activation(std::string(name)) {}

Activation::Activation(const std::string& n) : name(n) {
  if (n == "identity" || n.empty()) {
    name = "identity";
  } else if (n == "tanh") {
    fn = [](const Tensor& x) { return tanh(x); };
  } else if (n == "sigmoid") {
    fn = [](const Tensor& x) { return sigmoid(x); };
  } else if (n == "relu") {
    fn = [](const Tensor& x) { return relu(x); };
  } else if (n == "softplus") {
    fn = [](const Tensor& x) { return softplus(x); };
  } else if (n == "softmax") {
    fn = [](const Tensor& x) { return softmax(x, 0); };
  } else if (n == "log_softmax") {
    fn = [](const Tensor& x) { return log_softmax(x, 0); };
  } else {
    throw ValueError("Activation: unknown name '" + n +
                     "' (known: identity, tanh, sigmoid, relu, softplus, softmax, log_softmax; or pass a function)");
  }
}

Activation::Activation(std::string n, std::function<Tensor(const Tensor&)> f) : name(std::move(n)), fn(std::move(f)) {}

}  // namespace rwd
