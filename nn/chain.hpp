// rewind/nn/chain.hpp — layers applied one after another.
#pragma once

#include <memory>
#include <vector>

#include "activation.hpp"
#include "module.hpp"

namespace rwd {

/// Applies its layers in order: `Chain(Dense(2, 5, "tanh"), Dense(5, 1))`. Layers are named "0",
/// "1", … so parameters read "0.weight", like PyTorch's nn.Sequential. Takes layers by value,
/// as shared_ptr (to keep a handle), or activations.
class Chain : public Module {
 public:
  template <class... Layers>
  explicit Chain(Layers&&... layers) {
    (push(wrap(std::forward<Layers>(layers))), ...);
  }

  Tensor forward(const Tensor& x) override;
  std::string repr() const override;

  /// Appends a layer.
  void push(std::shared_ptr<Module> layer);
  std::size_t size() const { return m_layers.size(); }
  Module& operator[](std::size_t i) const { return *m_layers.at(i); }
  std::shared_ptr<Module> layer(std::size_t i) const { return m_layers.at(i); }

 private:
  template <class L>
  static std::shared_ptr<Module> wrap(L&& l) {
    if constexpr (std::is_convertible_v<L, Activation> && !std::is_base_of_v<Module, std::decay_t<L>>)
      return std::make_shared<Act>(Activation(std::forward<L>(l)));
    else
      return as_module(std::forward<L>(l));
  }
  std::vector<std::shared_ptr<Module>> m_layers;
};

}  // namespace rwd
