// rewind/nn/chain.hpp — layers applied one after another.
#pragma once

#include <memory>
#include <type_traits>
#include <vector>

#include "activation.hpp"
#include "module.hpp"

namespace rwd {

/// What a Chain holds: an activation ("relu", an Activation), a shared_ptr to a module (to keep a handle),
/// or a module given by value — a temporary or std::move(layer). A named module (an lvalue) is refused
/// here, at the call: modules cannot be copied, and a reference to it could dangle.
template <class L>
concept ChainLayer =
    (std::is_convertible_v<L, Activation> && !std::is_base_of_v<Module, std::decay_t<L>>) ||
    requires { typename std::decay_t<L>::element_type; } ||
    // a module: a temporary or std::move(layer); for a handle, give it as a shared_ptr (make_shared)
    (std::is_base_of_v<Module, std::decay_t<L>> && !std::is_lvalue_reference_v<L>);

/// Applies its layers in order: `Chain(Dense(2, 5, "tanh"), Dense(5, 1))`. Layers are named "0",
/// "1", … so parameters read "0.weight", like PyTorch's nn.Sequential. Takes layers by value,
/// as shared_ptr (to keep a handle), or activations.
class Chain : public Module {
 public:
  /// The layers in order: modules (by value or shared_ptr) or activations ("relu" becomes Act("relu")).
  template <class... Layers>
    requires(ChainLayer<Layers> && ...)  // each: a module as a temporary, std::move(m) or shared_ptr; an activation
  explicit Chain(Layers&&... layers) {
    (push(wrap(std::forward<Layers>(layers))), ...);
  }

  Tensor forward(const Tensor& x) override;
  /// A padded batch: the (time, batch) `mask` goes to every layer that takes one (Recurrent), as long
  /// as the values keep their (time, features, batch) form — a layer that ends the time axis (a
  /// Recurrent with return_sequences = false) ends the mask's use. So a padded classifier is a Chain:
  ///
  ///   Chain m(Embedding(vocab, 16), GRU(16, 32, {}, {.bidirectional = true, .return_sequences = false}),
  ///           Dense(64, classes));
  ///   Tensor logits = m(ids, mask_from_lengths(lengths));   // ids (time, batch) → (classes, batch)
  ///
  /// Throws ValueError when no layer took the mask (it would be ignored silently) and ShapeError when
  /// the mask's (time, batch) does not match the sequence reaching the first layer that takes it.
  Tensor forward(const Tensor& x, const Tensor& mask);
  /// forward(x, mask): `model(ids, mask)`.
  Tensor operator()(const Tensor& x, const Tensor& mask) { return forward(x, mask); }
  using Module::operator();
  /// True when a layer inside takes a mask (so a Chain nests in a Chain).
  bool takes_mask() const override;
  Tensor forward_masked(const Tensor& x, const Tensor& mask) override { return forward(x, mask); }
  std::string repr() const override;

  /// Appends a layer.
  void push(std::shared_ptr<Module> layer);
  /// Number of layers.
  std::size_t size() const { return m_layers.size(); }
  /// Layer i (bounds-checked: std::out_of_range past the end).
  Module& operator[](std::size_t i) const { return *m_layers.at(i); }
  /// Layer i as a shared handle, to keep or downcast (bounds-checked like operator[]).
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
