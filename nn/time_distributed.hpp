// rewind/nn/time_distributed.hpp — a per-step layer applied to every step of a sequence in one call.
#pragma once

#include <memory>
#include <string>
#include <type_traits>

#include "module.hpp"

namespace rwd {

// ---- per-step application ----

/// Applies a (features, batch) module to every step of a (time, features, batch) sequence in one call:
/// the steps are laid side by side as (features, time·batch), the module runs once, and the result
/// is folded back to (time, out, batch). A 2-D or 1-D input is passed straight to the module.
/// `TimeDistributed(Dense(256, 10))` is Keras' time-distributed Dense.
class TimeDistributed : public Module {
 public:
  /// Shares `layer`, registered as child "layer" (keys "layer.weight"); null is a ValueError.
  explicit TimeDistributed(std::shared_ptr<Module> layer);
  /// Takes a module by value: `TimeDistributed(Dense(256, 10))` (a temporary or std::move'd; a named
  /// module, which cannot be copied, is refused at the call).
  template <class M>
    requires(std::is_base_of_v<Module, std::decay_t<M>> && !std::is_same_v<std::decay_t<M>, TimeDistributed> &&
             // a temporary or std::move(layer): modules cannot be copied (for a handle, pass a shared_ptr)
             !std::is_lvalue_reference_v<M>)
  explicit TimeDistributed(M&& layer) : TimeDistributed(as_module(std::forward<M>(layer))) {}

  Tensor forward(const Tensor& x) override;
  std::string repr() const override { return "TimeDistributed(" + m_layer->repr() + ")"; }
  /// The per-step module.
  Module& inner() const { return *m_layer; }

 private:
  std::shared_ptr<Module> m_layer;
};

}  // namespace rwd
