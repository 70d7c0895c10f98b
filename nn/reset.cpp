#include "reset.hpp"

#include <string>

#include "../core/error.hpp"

namespace rwd {

void reset(Module& model) {
  model.apply([](Module& m) { m.reset_state(); });
}

void detach_state(Module& model) {
  model.apply([](Module& m) { m.detach_state(); });
}

void reset_rows(Module& model, const std::vector<bool>& done) {
  model.apply([&](Module& m) { m.reset_rows(done); });
}

std::vector<std::vector<Tensor>> save_states(Module& model) {
  std::vector<std::vector<Tensor>> saved;
  model.apply([&](Module& m) { saved.push_back(m.save_state()); });
  return saved;
}

void restore_states(Module& model, const std::vector<std::vector<Tensor>>& saved) {
  std::size_t modules = 0;
  model.apply([&](Module&) { ++modules; });
  if (modules != saved.size())
    throw ValueError("restore_states: the states were saved from a model of " + std::to_string(saved.size()) +
                     " modules; " + model.repr() + " has " + std::to_string(modules));
  std::size_t i = 0;
  model.apply([&](Module& m) { m.restore_state(saved[i++]); });
}

}  // namespace rwd
