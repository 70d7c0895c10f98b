#include "reset.hpp"

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

}  // namespace rwd
