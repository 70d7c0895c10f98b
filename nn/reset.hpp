// rewind/nn/reset.hpp — reset semantics: bringing stateful layers back to their start.
//
// Flux's `reset!`: independent sequences must not see each other's state. Call reset(model) before
// each new sequence (inside the loss, for a batch of independent sequences), and the state of every
// Recur in the model — however deep in Chains — returns to its initial value.
//
// Each function visits the model and every descendant (Module::apply) and calls the virtual of the
// same name on each: Module::reset_state, detach_state and reset_rows are no-ops that stateful layers
// override (Recur does; so can a user's layer that carries state between calls).
#pragma once

#include <vector>

#include "module.hpp"

namespace rwd {

/// Resets every stateful layer inside `model` (Recur states back to their initial value): reset_state() on each.
void reset(Module& model);

/// Cuts the history of every carried state inside `model`, keeping the values (truncated BPTT:
/// call between windows of a long sequence).
void detach_state(Module& model);

/// Resets, in every stateful layer of `model`, only the batch columns whose flag is set (the
/// sequences that ended), keeping the others running.
void reset_rows(Module& model, const std::vector<bool>& done);

/// The carried states of `model` and every descendant, values only: one entry per module in
/// Module::apply order (empty for the stateless ones). Cheap: the values are shared, not copied.
std::vector<std::vector<Tensor>> save_states(Module& model);

/// Rewinds every stateful layer of `model` to what save_states(model) returned. Throws ValueError
/// when `saved` was taken from a model with another number of modules.
void restore_states(Module& model, const std::vector<std::vector<Tensor>>& saved);

}  // namespace rwd
