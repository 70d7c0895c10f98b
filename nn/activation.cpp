#include "activation.hpp"

#include "../autograd/ops.hpp"

namespace rwd {

namespace {

// The axis a softmax normalises: the features — axis 0 of a (features,) vector or a (features, batch)
// step, axis 1 of a (time, features, batch) sequence (the layout of every sequence layer), as Keras'
// softmax takes the features of every step. Any other rank has no features axis to pick.
int feature_axis(const std::string& name, const Tensor& x) {
  if (x.ndim() == 1 || x.ndim() == 2) return 0;
  if (x.ndim() == 3) return 1;
  throw ShapeError(name + ": input " + x.shape().str() +
                   ": expected (features,), (features, batch) or a (time, features, batch) sequence");
}

}  // namespace

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
    fn = [](const Tensor& x) { return softmax(x, feature_axis("softmax", x)); };
  } else if (n == "log_softmax") {
    fn = [](const Tensor& x) { return log_softmax(x, feature_axis("log_softmax", x)); };
  } else {
    throw ValueError("Activation: unknown name '" + n +
                     "' (known: identity, tanh, sigmoid, relu, softplus, softmax, log_softmax; or pass a function)");
  }
}

Activation::Activation(std::string n, std::function<Tensor(const Tensor&)> f) : name(std::move(n)), fn(std::move(f)) {}

}  // namespace rwd
